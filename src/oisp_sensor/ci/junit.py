"""JUnit XML for CI systems: one test case per check, a <failure> for each that failed.

The shape GitLab (`artifacts:reports:junit`), Jenkins (`junit`), CircleCI
(`store_test_results`) and GitHub test-report actions all read: <testsuites> holding
one <testsuite>, test cases with classname and name.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from .checks import Result

SUITE = "oisp-sensor validate"


def junit_xml(results: Sequence[Result], events_path: str, seconds: float = 0.0) -> bytes:
    failures = sum(1 for r in results if not r.passed)
    root = ET.Element("testsuites", name=SUITE, tests=str(len(results)), failures=str(failures))
    suite = ET.SubElement(
        root,
        "testsuite",
        name=SUITE,
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{seconds:.3f}",
    )
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="events_file", value=events_path)
    for result in results:
        case = ET.SubElement(suite, "testcase", classname="oisp-sensor.validate", name=result.name, time="0")
        if result.passed:
            ET.SubElement(case, "system-out").text = result.detail
        else:
            failure = ET.SubElement(case, "failure", message=result.detail, type="oisp.validate")
            failure.text = f"{result.name}: {result.detail}"
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(path: str, results: Sequence[Result], events_path: str, seconds: float = 0.0) -> None:
    """Raises OSError (the caller reports it in one line)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "wb") as out:
        out.write(junit_xml(results, events_path, seconds))
