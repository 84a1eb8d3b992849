"""Root conftest: makes ``tests.support`` importable and registers the shared fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

# ``tests`` is not a regular package, so pytest puts ``tests/`` (not the repository root) on
# sys.path; the ``tests.support`` modules, and ``python -m tests.support.fake_provider``, need the
# root. Harmless when ``pythonpath`` in pyproject already provides it.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

pytest_plugins = ["tests.support.fixtures", "tests.support.kernel_gate"]
