"""benchmarks/service.py and loadgen.py: the pieces the numbers rest on, and one tiny real run.

Not a timed test: the smoke run pushes a low rate for ~2 s and checks that a complete report
comes out (every probe echoed to every client), not how fast anything was.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import loadgen  # noqa: E402
import service as bench  # noqa: E402

from streamwatch.config.load import load_config  # noqa: E402
from streamwatch.pipeline import Pipeline  # noqa: E402

NOW = 1_767_225_600.0


def base_samples() -> list[dict[str, Any]]:
    return [{"stream": f"room-{r}", "metric": m, "ts": NOW + i, "value": float(i),
             **({"labels": {"platform": "douyin"}} if m == "viewers" else {})}
            for i in range(5) for r in range(2) for m in ("viewers", "likes_total")]


def test_workload_body_is_ndjson_with_the_given_ts_and_copies() -> None:
    work = loadgen.build_workload(base_samples(), copies=3)
    lines = work.body(0, 12, b"1767225601.5").splitlines()
    samples = [orjson.loads(x) for x in lines]
    assert len(samples) == 12
    assert {s["ts"] for s in samples} == {1767225601.5}
    assert {s["stream"][-3:] for s in samples} == {"c00", "c01", "c02"}
    assert all((s.get("labels") == {"platform": "douyin"}) == (s["metric"] == "viewers")
               for s in samples)
    assert {s["metric"] for s in samples} == {"viewers", "likes_total"}
    # within one batch no (stream, metric) repeats, else one event time would be a duplicate
    assert len({(s["stream"], s["metric"]) for s in samples}) == 12


def test_prime_sends_every_series_of_every_copy_once() -> None:
    work = loadgen.build_workload(base_samples(), copies=3)
    bodies = work.prime(5, b"1767225601.5")
    samples = [orjson.loads(x) for b in bodies for x in b.splitlines()]
    assert [len(b.splitlines()) for b in bodies] == [5, 5, 2]
    assert len({(s["stream"], s["metric"]) for s in samples}) == len(samples) == 3 * 2 * 2
    assert {s["value"] for s in samples} == {0.0}          # each series' first base value


def test_shards_take_disjoint_copies() -> None:
    a = loadgen.build_workload(base_samples(), copies=4, shard=0, shards=2)
    b = loadgen.build_workload(base_samples(), copies=4, shard=1, shards=2)
    streams = [{orjson.loads(x)["stream"] for x in w.body(0, 80, b"1.0").splitlines()}
               for w in (a, b)]
    assert streams[0] and streams[1] and not streams[0] & streams[1]


def test_workload_refuses_a_shard_without_copies() -> None:
    with pytest.raises(ValueError, match="no room copy"):
        loadgen.build_workload(base_samples(), copies=1, shard=1, shards=2)
    with pytest.raises(ValueError, match="no base samples"):
        loadgen.build_workload([], copies=1)


@pytest.mark.parametrize("primed", [False, True])   # cold probe stream / created in warm-up
def test_probe_lines_make_the_errors_rule_fire_at_the_probe_ts(primed: bool) -> None:
    """The probe's assumption about detectors/services.toml (errors_high, 10 s min_duration)."""
    cfg = load_config()
    pipe = Pipeline(cfg.rules, cfg.pipeline_settings())
    stream = loadgen.probe_stream("t", 1)
    ts = NOW + 100.0
    if primed:
        calm = pipe.parser.parse_ndjson(loadgen.probe_prime_lines("t", 2, NOW), now=NOW)
        assert len(calm.batch) == 2 and not pipe.process(calm.batch)
    res = pipe.parser.parse_ndjson(loadgen.probe_lines(stream, ts), now=ts + 1)
    assert len(res.batch) == 2 and not res.rejections
    events = [e.model_dump() for e in pipe.process(res.batch)]
    fired = [e for e in events if e["stream"] == stream and e["status"] == "firing"]
    assert len(fired) == 1 and fired[0]["ts"] == ts and fired[0]["metric"] == "error_ratio"


def test_percentile_is_nearest_rank() -> None:
    assert bench.percentile([], 99) is None
    assert bench.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert bench.percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert bench.percentile([5.0], 99) == 5.0


def test_bad_arguments_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--rate", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        loadgen.main(["push", "--port", "1", "--shard", "2", "--shards", "2"])
    assert exc.value.code == 2


def _routes_are_placeholders() -> str:
    from streamwatch.api import feed, samples
    missing = [m.__name__ for m in (samples, feed) if not m.router.routes]
    return f"routes still placeholders: {', '.join(missing)}" if missing else ""


def test_a_short_low_rate_run_reports_every_probe(tmp_path: Path) -> None:
    if why := _routes_are_placeholders():
        pytest.skip(why)
    out = tmp_path / "report.json"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(BENCH / "service.py"), "--seconds", "2", "--rate", "4000",
         "--clients", "3", "--warmup", "0", "--rooms", "40", "--base-rooms", "4",
         "--sim-minutes", "4", "--grace", "8", "--json", str(out)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - t0 < 60
    r = json.loads(out.read_text())
    assert r["accepted"] > 2000 and r["rejected"] == 0 and r["status_429"] == 0
    assert r["probes_sent"] >= 3 and r["probes_seen"] == r["probes_sent"]
    assert r["probe_ts_mismatch"] == 0
    assert r["clients_connected"] == 3 and r["every_client_every_probe"] is True
    assert 0 < r["latency_ms"]["50"] <= r["latency_ms"]["max"] < 5000
    assert "targets:" in proc.stdout and "n/a" in proc.stdout     # below the target load
