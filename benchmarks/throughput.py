#!/usr/bin/env python
"""Throughput benchmark: streamwatch's replay vs a first-version z-score, on one core, same file.

    python benchmarks/throughput.py [--rooms 40] [--minutes 120] [--seed 4242]
                                    [--min-samples 500000] [--repeat 3] [--rebuild]
                                    [--samples FILE] [--no-cli] [--profile] [--json FILE]

Why it is built this way:
- One core (`os.sched_setaffinity(0, {0})`, inherited by the child processes, and
  NUMBA_NUM_THREADS=1) because the target is per-core throughput and a 2-core CI box would
  otherwise make the result depend on what else runs on it.
- The same file for both contestants, measured interleaved in the same run (reference, then
  streamwatch, then the CLI, repeated), reporting the median of the repeats, so a noisy
  neighbour or a thermal change hits every contestant alike.
- samples/s = sample lines in the file / wall seconds of the whole run (read, parse, detect,
  write alerts to /dev/null): end to end, nothing excluded but interpreter start-up in-process.
- streamwatch in-process runs after a small warm-up replay, so numba's JIT compilation is
  excluded from the in-process figure (a long-running service pays it once). The cold CLI
  subprocess (`streamwatch replay FILE --output /dev/null`) is timed too, start-up and JIT
  (or numba cache load) included, as what a user waits for once.
The samples file is built with `streamwatch simulate` and cached in benchmarks/.cache/ (gitignored).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache" / "throughput"
TARGET_RATIO = 20.0
TARGET_RATE = 500_000.0
WARMUP_LINES = 20_000


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pin_one_core() -> str:
    """Pin this process (and so its children) to CPU 0; must run before numba is imported."""
    os.environ["NUMBA_NUM_THREADS"] = "1"
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this OS): results may use several cores"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu} (affinity {sorted(os.sched_getaffinity(0))}), NUMBA_NUM_THREADS=1"


def streamwatch_env() -> dict[str, str]:
    """Make `import streamwatch` work here and in children when the package is not pip-installed."""
    env = dict(os.environ)
    if importlib.util.find_spec("streamwatch") is None:
        src = str(ROOT / "src")
        sys.path.insert(0, src)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def count_lines(path: Path) -> int:
    """Non-blank lines = samples; reading the file also warms the page cache for every contestant."""
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            n += bool(line.strip())
    return n


def simulator_fingerprint() -> str:
    """Hash of the simulator's source: a cached samples file is stale once the simulator changes."""
    pkg = ROOT / "src" / "streamwatch"
    files = sorted([*pkg.glob("sim/**/*.py"), *pkg.glob("simulate*.py")])
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(pkg).as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:16]


def build_samples(args: argparse.Namespace, env: dict[str, str]) -> tuple[Path, int]:
    """Reuse or build the cached samples file, growing `minutes` until it has enough samples."""
    minutes, fingerprint = args.minutes, simulator_fingerprint()
    for _ in range(4):
        d = CACHE / f"seed-{args.seed}-r{args.rooms}-m{minutes}"
        samples, meta_path = d / "samples.ndjson", d / "meta.json"
        meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        fresh = (not args.rebuild and samples.exists() and meta.get("sim") == fingerprint
                 and meta.get("bytes") == samples.stat().st_size)
        if fresh:
            log(f"samples: reusing {samples} ({meta['samples']:,} samples)")
            n = int(meta["samples"])
        else:
            d.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "streamwatch", "simulate", "--seed", str(args.seed),
                   "--rooms", str(args.rooms), "--minutes", str(minutes), "--out", str(d)]
            log(f"samples: simulating {args.rooms} rooms × {minutes} min into {d} …")
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
            n = count_lines(samples)
            meta_path.write_text(json.dumps({"samples": n, "bytes": samples.stat().st_size,
                                             "sim": fingerprint}))
            log(f"samples: {n:,} samples in {time.perf_counter() - t0:.1f} s")
        if n >= args.min_samples:
            return samples, n
        minutes = math.ceil(minutes * args.min_samples / max(n, 1) * 1.1)
        log(f"samples: {n:,} < {args.min_samples:,}; retrying with {minutes} minutes")
    raise SystemExit(f"could not reach {args.min_samples:,} samples; pass --rooms/--minutes")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def reference(path: Path) -> Callable[[], Any]:
    sys.path.insert(0, str(HERE))
    import reference_zscore

    def go() -> Any:
        with open(os.devnull, "w", encoding="utf-8") as sink:
            return reference_zscore.run(path, sink)
    return go


def streamwatch_inproc(path: Path) -> Callable[[], Any]:
    from streamwatch.replay import replay_ndjson

    def go() -> Any:
        with open(os.devnull, "wb") as sink:
            return replay_ndjson(path, sink)
    return go


def streamwatch_cli(path: Path, env: dict[str, str]) -> Callable[[], Any]:
    cmd = [sys.executable, "-m", "streamwatch", "replay", str(path), "--output", os.devnull]

    def go() -> Any:
        return subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode
    return go


def warm_up(path: Path) -> float:
    """Replay the file's first lines once so numba compiles (or loads its cache) before timing."""
    small = CACHE / "warmup.ndjson"
    with open(path, "rb") as src, open(small, "wb") as dst:
        for i, line in enumerate(src):
            if i >= WARMUP_LINES:
                break
            dst.write(line)
    dt, _ = timed(streamwatch_inproc(small))
    return dt


def profile(path: Path) -> None:
    """cProfile one in-process replay; numba-compiled kernels show as single opaque calls."""
    import cProfile
    import pstats
    prof = cProfile.Profile()
    prof.runcall(streamwatch_inproc(path))
    print("\ncProfile of one in-process replay (top 15 by cumulative time; profiling overhead "
          "inflates pure-Python frames):")
    pstats.Stats(prof, stream=sys.stdout).strip_dirs().sort_stats("cumulative").print_stats(15)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="streamwatch replay throughput vs a naive z-score.")
    p.add_argument("--rooms", type=int, default=40)
    p.add_argument("--minutes", type=int, default=120)
    p.add_argument("--seed", type=int, default=4242)
    p.add_argument("--min-samples", type=int, default=500_000)
    p.add_argument("--repeat", type=int, default=3, help="runs per contestant; median reported")
    p.add_argument("--rebuild", action="store_true", help="re-simulate even if cached")
    p.add_argument("--samples", type=Path, help="use this NDJSON file instead of simulating")
    p.add_argument("--no-cli", action="store_true", help="skip the cold CLI subprocess timing")
    p.add_argument("--profile", action="store_true", help="cProfile one replay, print top 15")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log(pin_one_core())
    env = streamwatch_env()
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        path, n = ((args.samples, count_lines(args.samples)) if args.samples
                   else build_samples(args, env))
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"error: cannot get a samples file: {exc}")
        return 1
    count_lines(path)  # page cache warm for everyone
    log(f"file: {path} — {n:,} samples, {path.stat().st_size / 1e6:.0f} MB")

    contestants: dict[str, Callable[[], Any]] = {"reference z-score (pure Python)": reference(path)}
    sw_error = None
    try:
        contestants["streamwatch replay, in-process, warm"] = streamwatch_inproc(path)
        log(f"warm-up: replay of the first {WARMUP_LINES:,} lines (JIT compile) "
            f"took {warm_up(path):.2f} s — excluded from the in-process figure")
        if not args.no_cli:
            contestants["streamwatch replay CLI, cold subprocess"] = streamwatch_cli(path, env)
    except Exception as exc:  # noqa: BLE001 - report what is there, say why the rest is not
        sw_error = f"{type(exc).__name__}: {exc}"
        log(f"streamwatch replay unavailable: {sw_error}")
        contestants.pop("streamwatch replay, in-process, warm", None)

    runs: dict[str, list[float]] = {name: [] for name in contestants}
    extra: dict[str, Any] = {}
    for rep in range(1, args.repeat + 1):
        for name, fn in list(contestants.items()):
            log(f"run {rep}/{args.repeat}: {name} …")
            try:
                dt, result = timed(fn)
            except Exception as exc:  # noqa: BLE001 - one broken contestant must not hide the rest
                log(f"run {rep}/{args.repeat}: {name} failed: {type(exc).__name__}: {exc}")
                sw_error = sw_error or f"{name}: {type(exc).__name__}: {exc}"
                del contestants[name], runs[name]
                continue
            runs[name].append(dt)
            extra[name] = result
            log(f"run {rep}/{args.repeat}: {name}: {dt:.2f} s ({n / dt:,.0f} samples/s)")

    med = {name: statistics.median(ts) for name, ts in runs.items()}
    rate = {name: n / t for name, t in med.items()}
    print(f"\nThroughput on one core, {n:,} samples ({path.name}), median of {args.repeat} runs")
    for name in contestants:
        shown = ", ".join(f"{t:.2f}" for t in runs[name])
        print(f"  {name:<42} {rate[name]:>12,.0f} samples/s   {med[name]:7.2f} s  (runs: {shown})")
    noisy = [name for name, ts in runs.items() if len(ts) > 1 and max(ts) > 1.3 * min(ts)]
    if noisy:
        print(f"  warning: runs differ by > 30 % for {'; '.join(noisy)}: something else was using "
              "the core; re-run on a quiet machine before trusting the ratio")
    ref_name, sw_name = "reference z-score (pure Python)", "streamwatch replay, in-process, warm"
    ref_out = extra.get(ref_name)
    if isinstance(ref_out, tuple):
        print(f"  reference: {ref_out[0]:,} samples read, {ref_out[1]:,} alert lines")
    summary = extra.get(sw_name)
    if summary is not None:
        print(f"  streamwatch: ReplaySummary(samples={getattr(summary, 'samples', '?'):,}, "
              f"accepted={getattr(summary, 'accepted', '?'):,}, rejected="
              f"{getattr(summary, 'rejected', '?'):,}, alerts={getattr(summary, 'alerts', '?'):,})")
    print("  (in-process figure excludes numba JIT compile via a warm-up replay; the CLI figure "
          "includes interpreter start-up, imports and JIT or cache load)")

    result: dict[str, Any] = {"samples": n, "file": str(path), "repeat": args.repeat,
                              "runs_s": runs, "samples_per_s": rate}
    if sw_name in rate:
        ratio = rate[sw_name] / rate[ref_name]
        result.update(ratio=ratio, ratio_pass=ratio >= TARGET_RATIO,
                      rate_pass=rate[sw_name] >= TARGET_RATE)
        print(f"\n  speed-up vs reference: {ratio:6.1f}×            target ≥ {TARGET_RATIO:.0f}×"
              f"              {verdict(ratio >= TARGET_RATIO)}")
        print(f"  streamwatch absolute:  {rate[sw_name]:,.0f} samples/s   target ≥ "
              f"{TARGET_RATE:,.0f} samples/s   {verdict(rate[sw_name] >= TARGET_RATE)}")
    else:
        print(f"\n  speed-up vs reference: FAIL (streamwatch replay unavailable: {sw_error})")
        print("  streamwatch absolute:  FAIL")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.profile and sw_name in contestants:
        profile(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
