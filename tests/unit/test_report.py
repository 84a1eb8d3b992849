"""`oisp-sensor report` over the recorded session (tests/fixtures/ci/session.jsonl) and
`--baseline` comparisons, from report JSON and from events files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_validate import SESSION, events, write

from oisp_sensor.ci.stats import percentile
from oisp_sensor.cli import main


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def as_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, _ = report(capsys, *args, "--format", "json")
    assert code == 0
    result: dict[str, Any] = json.loads(out)
    return result


def test_json_totals_match_the_events(capsys: pytest.CaptureFixture[str]) -> None:
    r = as_json(capsys, str(SESSION))
    evs = events()
    responses = [e for e in evs if e["event_type"] == "ai.response"]
    latencies = sorted(e["data"]["latency_ms"] for e in responses)
    t = r["totals"]
    assert r["oisp_report"] == 1 and r["events"] == 68 and r["malformed_lines"] == 0
    assert (t["requests"], t["errors"], t["incomplete"], t["streaming"], t["tool_calls"]) == (6, 1, 0, 1, 1)
    assert (
        t["total_tokens"] == sum(e["data"].get("usage", {}).get("total_tokens", 0) for e in responses) == 63
    )
    assert t["prompt_tokens"] + t["completion_tokens"] == 63
    assert t["cost_usd"] == pytest.approx(sum(e["data"].get("cost", {}).get("usd", 0) for e in responses))
    assert t["unpriced_responses"] == 1
    assert t["latency_ms"]["max"] == latencies[-1] and t["latency_ms"]["count"] == 6
    assert t["latency_ms"]["p50"] == latencies[2]
    assert r["tools"] == {"get_weather": 1}
    assert list(r["by_provider"]) == ["openai", "anthropic"]
    assert r["by_provider"]["openai"]["requests"] == 5 and r["by_provider"]["openai"]["errors"] == 1
    assert r["by_model"]["gpt-4o"]["requests"] == 2 and r["by_model"]["error-429"]["errors"] == 1
    assert r["by_process"]["curl"]["total_tokens"] == 14
    assert r["by_app"] == {"unknown": r["by_app"]["unknown"]} and r["by_app"]["unknown"]["requests"] == 6
    assert r["event_types"]["ai.streaming_chunk"] == 8


def test_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(capsys, str(SESSION))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"oisp-sensor report: {SESSION} (68 events, 2026-12-03T")
    assert "  AI calls        6 (1 streamed, 0 without response)" in lines
    assert "  tokens          63 (prompt 26, completion 37)" in lines
    assert "  tool calls      1" in lines
    header = next(x for x in lines if x.startswith("provider"))
    assert header.split() == [
        "provider",
        "requests",
        "errors",
        "tokens",
        "cost",
        "p50",
        "ms",
        "p95",
        "ms",
        "max",
        "ms",
    ]
    assert next(x for x in lines if x.startswith("anthropic")).split()[:4] == ["anthropic", "1", "0", "14"]
    assert any(x.startswith("get_weather") for x in lines)


def test_markdown_for_the_step_summary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    code, out, _ = report(capsys, str(SESSION), "--format", "markdown", "-o", str(summary))
    assert code == 0 and out == ""
    md = summary.read_text()
    assert md.startswith(
        "## AI activity (oisp-sensor)\n\n|  | value |\n|---|---:|\n| AI calls | 6 (1 streamed"
    )
    assert (
        "### By provider\n\n| provider | requests | errors | tokens | cost | p50 ms | p95 ms | max ms |\n"
        in md
    )
    assert "| anthropic | 1 | 0 | 14 |" in md
    assert "### Tool calls" in md and "| get_weather | 1 |" in md
    for block in md.split("\n\n"):  # every table row has as many cells as its header
        rows = [r for r in block.splitlines() if r.startswith("|")]
        assert len({r.count(" | ") for r in rows if not r.startswith("|---")}) <= 1, block


def test_baseline_same_run_passes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    assert report(capsys, str(SESSION), "--format", "json", "-o", str(base))[0] == 0
    code, out, err = report(capsys, str(SESSION), "--baseline", str(base))
    assert code == 0, out + err
    assert f"compared with baseline {base} (max increase 10%):" in out
    assert "  ok    tokens: 63 -> 63 (+0.0%)" in out
    assert out.rstrip().endswith("baseline: within limits")
    # an events file works as a baseline too
    assert report(capsys, str(SESSION), "--baseline", str(SESSION))[0] == 0


def test_baseline_growth_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    evs = events()
    curl_ids = {e["process"]["pid"] for e in evs if e["process"]["name"] == "curl"}
    smaller = write(tmp_path, [e for e in evs if e["process"]["pid"] not in curl_ids], "old.jsonl")
    code, out, err = report(capsys, str(SESSION), "--baseline", smaller)
    assert code == 1
    assert "  FAIL  AI calls: 5 -> 6 (+20.0%)" in out
    assert "  FAIL  tokens: 49 -> 63 (+28.6%)" in out
    assert "  FAIL  cost (USD): $0.000208 -> $0.000245 (+17.7%)" in out
    assert out.rstrip().endswith("baseline: AI calls, tokens, cost (USD) grew more than 10%")
    assert err == ""
    assert report(capsys, str(SESSION), "--baseline", smaller, "--max-increase", "30%")[0] == 0
    code, out, _ = report(capsys, str(SESSION), "--baseline", smaller, "--max-increase", "25")
    assert code == 1 and "  ok    AI calls: 5 -> 6" in out and "  FAIL  tokens" in out
    # fewer calls than the baseline never fails
    assert report(capsys, smaller, "--baseline", str(SESSION), "--max-increase", "0%")[0] == 0


def test_baseline_in_markdown_and_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    evs = events()
    smaller = write(tmp_path, [e for e in evs if e["process"]["name"] != "curl"], "old.jsonl")
    code, out, err = report(capsys, str(SESSION), "--baseline", smaller, "--format", "markdown")
    assert code == 1
    assert "### Compared with the baseline" in out
    assert "| tokens | 49 | 63 | +28.6% | +10% | :x: |" in out
    assert "baseline: AI calls, tokens, cost (USD) grew more than 10%" in err  # also in the log
    code, out, _ = report(capsys, str(SESSION), "--baseline", smaller, "--format", "json")
    assert code == 1
    changes = json.loads(out)["baseline"]["changes"]
    assert changes["total_tokens"] == {"baseline": 49.0, "current": 63.0, "exceeded": True}


def test_baseline_from_zero(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, out, _ = report(capsys, str(SESSION), "--baseline", str(empty))
    assert code == 1 and "  FAIL  AI calls: 0 -> 6 (new)" in out
    assert report(capsys, str(empty), "--baseline", str(empty))[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline", "/nonexistent.json"], "cannot read baseline /nonexistent.json"),
        (
            ["--baseline", "SESSION", "--max-increase", "ten"],
            "--max-increase 'ten': give a percentage such as 10%",
        ),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    args = [str(SESSION) if a == "SESSION" else a for a in args]
    code, out, err = report(capsys, str(SESSION), *args)
    assert code == 2 and out == "" and message in err


def test_bad_baseline_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    other = tmp_path / "r.json"
    other.write_text('{"oisp_report": 99, "totals": {}}')
    code, _, err = report(capsys, str(SESSION), "--baseline", str(other))
    assert code == 2 and "report format 99 not understood" in err
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    code, _, err = report(capsys, str(SESSION), "--baseline", str(junk))
    assert code == 2 and "baseline: " in err and "not an oisp-sensor events file" in err


def test_malformed_and_empty_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, events(), tail='{"event_type":"ai.resp\n')
    r_code, out, err = report(capsys, path)
    assert r_code == 0
    assert "(1 malformed lines skipped)" in out
    assert (
        err.strip()
        == f"oisp-sensor: {path}: 1 malformed line (first: line 69, not JSON (truncated line?)) skipped"
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code, out, err = report(capsys, str(empty))
    assert code == 0 and "AI calls    0" in out
    assert err.strip() == f"oisp-sensor: {empty} is empty: no events were captured"
    (tmp_path / "bin").write_bytes(b"\x00\x01\x02")
    code, out, err = report(capsys, str(tmp_path / "bin"))
    assert code == 2 and out == "" and "not an oisp-sensor events file" in err


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 95, 99, 100)] == [50.0, 90.0, 95.0, 99.0, 100.0]
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) == 0.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_report_without_traceback_through_the_entry_point(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "oisp_sensor", "report", str(SESSION), "--format", "markdown"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout.startswith("## AI activity") and res.stderr == ""
