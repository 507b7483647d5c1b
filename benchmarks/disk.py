#!/usr/bin/env python
"""Disk: what the durable paths cost on this machine's disk, and why detection does not wait.

    python benchmarks/disk.py [--seconds 10] [--batch 1000] [--dir DIR] [--json FILE]

Four phases on the real `Journal` and `SqliteStore`, each `--seconds` long, one operation every
5 ms (about the service's round rate under load), in a temporary directory on the data disk
(`--dir`, default: the system's temporary directory):

1. `journal append+sync`  - write a `--batch`-sample record and fsync it before going on: what
   detection waited for before the split (session 2's journal).
2. `journal append`       - only the write, while a second thread fsyncs in a loop, as the
   service's syncer does: what detection waits for now (checkpoint.py).
3. `sqlite FULL commit`   - one alert event + its incident, fsync'ed at commit: what the event
   loop waited for per emitting round before the store went NORMAL with the journal on.
4. `sqlite NORMAL commit` - the same commit without the fsync (store/sqlite.py).

For each: p50 / p99 / p99.9 / max in ms and how many took over 50 ms, then the ratios of the
p99s (fsync'ed / not). The fsync'ed figures are the disk's, and vary a lot between runs and
machines (this VM: 0.5 ms typical, 100-460 ms outliers); the point is the outliers' count.
Exit 0, or 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from streamwatch.ingest.batch import Batch  # noqa: E402
from streamwatch.store import Counters, IncidentRecord, SqliteStore  # noqa: E402
from streamwatch.store.journal import Journal  # noqa: E402

__all__ = ["main", "summarize"]

_PACE_S = 0.005


def summarize(lat_s: list[float]) -> dict[str, float]:
    a = np.sort(np.asarray(lat_s)) * 1e3
    q = lambda p: float(a[min(len(a) - 1, int(p * len(a)))])  # noqa: E731
    return {"n": len(a), "p50_ms": q(0.5), "p99_ms": q(0.99), "p999_ms": q(0.999),
            "max_ms": float(a[-1]), "over_50ms": int((a > 50).sum())}


def _timed(op: Callable[[int], object], seconds: float) -> list[float]:
    out, k, end = [], 0, time.monotonic() + seconds
    while time.monotonic() < end:
        k += 1
        t0 = time.perf_counter()
        op(k)
        out.append(time.perf_counter() - t0)
        time.sleep(_PACE_S)
    return out


def _batch(n: int) -> Batch:
    rng = np.random.default_rng(7)
    return Batch([f"room-{i % 500}" for i in range(n)], ["viewers"] * n,
                 1_767_225_600.0 + np.arange(n, dtype=np.float64), rng.random(n),
                 [None] * n, np.arange(1, n + 1))


def _journal(d: Path, batch: Batch, seconds: float, sync_each: bool) -> list[float]:
    j = Journal(d, "bench")
    j.recover()
    stop = threading.Event()

    def syncer() -> None:                     # the service's syncer: fsync whatever is written
        while not stop.is_set():
            j.sync()
            time.sleep(0.0005)
    t = None if sync_each else threading.Thread(target=syncer, daemon=True)
    if t is not None:
        t.start()
    try:
        return _timed(lambda _: (j.append([batch]), sync_each and j.sync()), seconds)
    finally:
        stop.set()
        if t is not None:
            t.join()
        j.close()


def _sqlite(path: Path, seconds: float, mode: str) -> list[float]:
    store = SqliteStore(path, synchronous=mode)   # type: ignore[arg-type]

    def commit(k: int) -> None:
        ev = {"id": f"{k:012d}", "ts": 1.0 * k, "incident_id": "inc-00000001",
              "status": "firing", "summary": "bench"}
        doc = {"id": "inc-00000001", "status": "open", "stream": "room-a", "timeline": []}
        store.append_events([ev], [IncidentRecord("inc-00000001", "open", "room-a", "k", doc,
                                                  None)], Counters(k, 1))
    try:
        return _timed(commit, seconds)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.batch <= 0:
        ap.error("--seconds and --batch must be positive")
    batch = _batch(args.batch)
    report: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="sw-disk-", dir=args.dir) as tmp:
        root = Path(tmp)
        phases = [("journal append+sync", lambda: _journal(root / "j1", batch, args.seconds, True)),
                  ("journal append", lambda: _journal(root / "j2", batch, args.seconds, False)),
                  ("sqlite FULL commit", lambda: _sqlite(root / "full.db", args.seconds, "FULL")),
                  ("sqlite NORMAL commit",
                   lambda: _sqlite(root / "normal.db", args.seconds, "NORMAL"))]
        for name, run in phases:
            print(f"[disk] {name}: {args.seconds:.0f} s ...", file=sys.stderr, flush=True)
            report[name] = summarize(run())
    print(f"{'phase':22s} {'n':>6s} {'p50 ms':>8s} {'p99 ms':>8s} {'p99.9 ms':>9s} "
          f"{'max ms':>8s} {'>50 ms':>7s}")
    for name, r in report.items():
        print(f"{name:22s} {r['n']:6d} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} "
              f"{r['p999_ms']:9.3f} {r['max_ms']:8.1f} {r['over_50ms']:7d}")
    for a, b in (("journal append+sync", "journal append"),
                 ("sqlite FULL commit", "sqlite NORMAL commit")):
        print(f"p99 {a} / {b}: {report[a]['p99_ms'] / max(report[b]['p99_ms'], 1e-6):.1f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
