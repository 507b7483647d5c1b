"""One-command speed check of the hot path's first stage: NDJSON bytes -> checked `Batch`.

Why: replay must run >= 500k samples/s end to end and parsing gets about a third of that budget,
so `parse_ndjson` must sustain >= 1.5 M valid samples/s. A `json.loads`-per-line loop that fills
the same columns is printed as the reference a naive implementation would reach.

    PYTHONPATH=src .venv/bin/python benchmarks/parse_speed.py [--samples 500000] [--repeat 5]
                                                             [--bad-every N]

Input is generated in memory (no disk): 200 rooms and a few `svc:` streams, the catalogue's
metrics, event time advancing 10 ms a sample, a label set on one sample in ten, cut in 4 MiB
chunks on line ends exactly like `iter_ndjson_file` does. Best of `--repeat` runs is reported.
`--bad-every N` turns every Nth line into a `NaN`-literal sample, to see what the tolerant path
costs.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import time

import numpy as np

from streamwatch.ingest.parse import parse_ndjson

__all__ = ["make_lines", "chunks", "main"]

_GAUGES = ["viewers", "bitrate_kbps", "fps", "dropped_frames_ratio", "rebuffer_ratio",
           "cpu_utilization", "latency_p99_ms", "error_ratio", "live"]
_COUNTERS = ["entries_total", "comments_total", "likes_total", "shares_total", "follows_total",
             "product_clicks_total", "orders_total", "gmv_total", "complaints_total",
             "refunds_total"]


def make_lines(n: int, seed: int = 7) -> list[bytes]:
    """n realistic sample lines in event-time order, as a collector would write them."""
    rng = random.Random(seed)
    streams = [f"room-{i:03d}" for i in range(200)] + ["svc:payment", "svc:cdn", "svc:search"]
    metrics = _GAUGES + _COUNTERS
    t0, out = 1_714_557_600.0, []
    for i in range(n):
        metric = rng.choice(metrics)
        if metric.endswith("_total"):
            value: float = rng.randrange(0, 5_000_000)
        elif metric.endswith("ratio") or metric == "cpu_utilization":
            value = round(rng.random(), 4)
        else:
            value = round(rng.uniform(0, 30_000), 2)
        sample: dict[str, object] = {"stream": rng.choice(streams), "metric": metric,
                                     "ts": round(t0 + i * 0.01, 3), "value": value}
        if i % 10 == 0:
            sample["labels"] = {"region": "cn-east", "platform": "douyin"}
        out.append(json.dumps(sample, separators=(",", ":")).encode())
    return out


def chunks(lines: list[bytes], chunk_bytes: int = 4 << 20) -> list[tuple[bytes, int]]:
    """(chunk, first line number) pairs cut on line ends, like `iter_ndjson_file`."""
    data = b"\n".join(lines) + b"\n"
    out, start, line = [], 0, 1
    while start < len(data):
        end = data.rfind(b"\n", start, start + chunk_bytes) + 1 or len(data)
        out.append((data[start:end], line))
        line += data.count(b"\n", start, end)
        start = end
    return out


def _reference(parts: list[tuple[bytes, int]]) -> int:
    """The naive way: json.loads per line into the same columns, with only the basic checks."""
    n = 0
    for chunk, _ in parts:
        streams, metrics, ts, values, labels = [], [], [], [], []
        for line in chunk.splitlines():
            if not line.strip():
                continue
            o = json.loads(line)
            v, t = o["value"], o["ts"]
            if isinstance(v, bool) or not math.isfinite(v) or not 946684800.0 <= t:  # NaN: dropped
                continue
            streams.append(o["stream"])
            metrics.append(o["metric"])
            ts.append(t)
            values.append(v)
            labels.append(o.get("labels"))
        columns = np.array(ts, dtype=np.float64), np.array(values, dtype=np.float64)
        n += len(columns[0])
    return n


def _ours(parts: list[tuple[bytes, int]]) -> int:
    """Chunk by chunk, each batch handed on and dropped, as replay streams a file."""
    now = time.time()
    return sum(len(parse_ndjson(c, now=now, first_line=f).batch) for c, f in parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bad-every", type=int, default=0)
    args = ap.parse_args()
    lines = make_lines(args.samples)
    if args.bad_every:
        bad = b'{"stream":"room-001","metric":"viewers","ts":1714557600.0,"value":NaN}'
        for i in range(args.bad_every - 1, len(lines), args.bad_every):
            lines[i] = bad
    parts = chunks(lines)
    for name, fn in (("parse_ndjson", _ours), ("json.loads per line", _reference)):
        wall = cpu = math.inf
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            got = fn(parts)
            wall = min(wall, time.perf_counter() - t)
            cpu = min(cpu, time.process_time() - c)
        assert got == args.samples - (args.samples // args.bad_every if args.bad_every else 0), got
        print(f"{name:>20}: {args.samples / wall / 1e6:5.2f} M samples/s wall "
              f"({wall * 1e3:.0f} ms), {args.samples / cpu / 1e6:5.2f} M/s by CPU time")

if __name__ == "__main__":
    main()
