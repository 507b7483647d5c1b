#!/usr/bin/env python
"""The speed baseline: a rolling z-score detector written the way a first version usually is.

    python benchmarks/reference_zscore.py SAMPLES.ndjson > alerts.ndjson

Why it exists: the throughput target ("≥ 20× a straightforward implementation") needs a concrete,
reviewable straightforward implementation. This is it: pure Python, one sample at a time —
`json.loads` per line, a `defaultdict` of `deque(maxlen=60)` per (stream, metric), mean and
standard deviation recomputed over the window for every sample, and an alert line printed as JSON
when |z| > 4. It is deliberately *not* a strawman: it uses plain `sum()` arithmetic rather than the
much slower `statistics` module, keeps no history beyond the window and does no rate conversion,
validation, event-time ordering, grading or incident logic, all of which streamwatch does on top.
It scores each sample against the window *before* appending it (score, then learn).
"""
from __future__ import annotations

import json
import math
import sys
from collections import defaultdict, deque
from pathlib import Path
from typing import TextIO

__all__ = ["WINDOW", "THRESHOLD", "MIN_POINTS", "run", "main"]

WINDOW = 60        # samples per (stream, metric) window
THRESHOLD = 4.0    # |z| above this prints an alert
MIN_POINTS = 10    # no verdict before the window holds this many samples


def run(path: Path, out: TextIO) -> tuple[int, int]:
    """Stream `path` (NDJSON samples) through the detector; return (samples, alerts)."""
    windows: defaultdict[tuple[str, str], deque[float]] = defaultdict(lambda: deque(maxlen=WINDOW))
    samples = alerts = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            sample = json.loads(line)
            samples += 1
            key = (sample["stream"], sample["metric"])
            value = float(sample["value"])
            window = windows[key]
            if len(window) >= MIN_POINTS:
                mean = sum(window) / len(window)
                std = math.sqrt(sum((v - mean) ** 2 for v in window) / len(window))
                if std > 0:
                    z = (value - mean) / std
                    if abs(z) > THRESHOLD:
                        alerts += 1
                        print(json.dumps({"ts": sample["ts"], "stream": key[0], "metric": key[1],
                                          "observed": value, "expected": mean, "z": z}), file=out)
            window.append(value)
    return samples, alerts


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: reference_zscore.py SAMPLES.ndjson", file=sys.stderr)
        return 2
    samples, alerts = run(Path(args[0]), sys.stdout)
    print(f"{samples} samples, {alerts} alerts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
