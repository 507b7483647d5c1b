"""benchmarks/soak.py: its arithmetic, and one tiny real run end to end (~15 s, low rate).

Not a timed test: the run checks that the report comes out whole (a line per window with RSS,
fds, probe latencies; a verdict whose exit status matches it), not how fast or flat anything was.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import soak  # noqa: E402


def test_slope_is_least_squares_per_minute() -> None:
    assert soak.slope_per_min([(0.0, 100.0), (30.0, 100.5), (60.0, 101.0)]) == pytest.approx(1.0)
    flat_noisy = [(float(t), 200.0 + (0.3 if t % 2 else -0.3)) for t in range(0, 120, 5)]
    assert abs(soak.slope_per_min(flat_noisy)) < 0.05          # type: ignore[arg-type]
    assert soak.slope_per_min([(0.0, 1.0), (1.0, 2.0)]) is None  # too few points
    assert soak.slope_per_min([(5.0, 1.0)] * 3) is None          # no time span


def test_proc_readings_of_this_process() -> None:
    assert soak.rss_kb(os.getpid()) > 1000
    with open(__file__):
        assert soak.open_fds(os.getpid()) >= 4


def test_bad_arguments_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        soak.main(["--minutes", "0"])
    assert exc.value.code == 2


def test_a_short_low_rate_soak_reports_every_window(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "soak.py"), "--minutes", "0.2", "--rate", "2000",
         "--batch", "200", "--rooms", "40", "--base-rooms", "4", "--sim-minutes", "4",
         "--clients", "2", "--warmup", "1", "--probe-every", "1", "--report-every", "4",
         "--sample-every", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    v = json.loads(out.read_text())
    verdict = [line for line in proc.stdout.splitlines() if line.startswith("verdict: ")]
    assert verdict == [f"verdict: {'PASS' if v['pass'] else 'FAIL'}"]
    assert proc.returncode == (0 if v["pass"] else 1)
    assert "samples/s" in proc.stdout and "RSS MB" in proc.stdout and "p99 ms" in proc.stdout
    for word in ("memory", "latency", "errors"):
        assert any(line.startswith(f"  {word}") for line in proc.stdout.splitlines())
    windows = v["windows"]
    assert len(windows) >= 3
    assert all(w["rss_mb"] > 10 and w["fds"] > 3 and w["errors"] == 0 for w in windows)
    assert sum(w["samples_per_s"] > 0 for w in windows) >= len(windows) - 1
    assert v["accepted"] > 10_000 and v["errors"] == 0 and v["checks"]["errors"] is True
    assert v["probes_sent"] >= 8 and v["probes_seen"] == v["probes_sent"]
    assert v["probes_lost"] == 0 and sum(w["probes"] for w in windows) == v["probes_seen"]
    assert 0 < v["latency_ms"]["p50"] <= v["latency_ms"]["max"]
    assert v["rss_slope_mb_per_min"] is not None and v["rss_points_second_half"] >= 3
