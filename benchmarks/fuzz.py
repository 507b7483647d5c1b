#!/usr/bin/env python3
"""The larger fuzzing run of the HTTP API (`make bench-fuzz`): tests/api/test_fuzz.py's checks,
20x its case count by default, against the real `streamwatch serve` in a subprocess.

Why a separate run: CI fuzzes a bounded number of cases on every change (seconds); this one
explores far more (minutes) with a fresh random seed each time, so it keeps finding what the
fixed CI examples cannot. It drives the same engine (tests/api/fuzzing.py, fuzz_bodies.py):

- the service: `python -m streamwatch serve` on a free 127.0.0.1 port, a copy of config/ without
  sources.toml (no pull sources), the repository's detectors/, a temporary --data-dir, an admin
  token of this run, and 127.0.0.1 on the webhook allow-list;
- per operation of its OpenAPI schema, `--cases` positive and `--cases` negative schemathesis
  examples with the token, `--cases` examples with no, an unknown or a malformed token;
- 7 x `--cases` hostile `POST /v1/samples` bodies (4 NDJSON, 2 JSON array, 1 random bytes);
- at the end: every accepted sample counted, a new sample still processed, the service still
  running, and no traceback in its log (an exception in the consumer is no 5xx, but a bug).

Prints per operation the cases tried, the status classes seen and the failures, then each
failure with what reproduces it (curl command or body), then one line to quote:
`bad-input cases tried: N, 5xx: N, hangs: N` (every generated request counts: schema-valid
examples too, which sit at the edges of what the schema allows). Exit 1 on any failure, 5xx,
hang or traceback; 2 if it could not run (the service did not start).
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import service as svcbench  # noqa: E402  (benchmarks/service.py: spawn, stop, wait_ready)

from tests.api.fuzzing import Fuzzer  # noqa: E402

CI_CASES = 10                 # tests/api/test_fuzz.py's default (STREAMWATCH_FUZZ_CASES)
LOG_ALARMS = ("Traceback (most recent call last)", "Exception in ASGI application",
              "pipeline failed on a batch")

__all__ = ["main"]


def log(msg: str) -> None:
    print(f"[fuzz-bench] {msg}", file=sys.stderr, flush=True)


def start_service(tmp: Path, port: int, token: str, out: object) -> subprocess.Popen[bytes]:
    cfg = tmp / "config"
    shutil.copytree(ROOT / "config", cfg, ignore=shutil.ignore_patterns("sources.toml"))
    cmd = ["-m", "streamwatch", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--config", str(cfg), "--detectors", str(ROOT / "detectors"),
           "--data-dir", str(tmp / "data")]
    env = {"STREAMWATCH_API_TOKENS": f"admin:{token}",
           "STREAMWATCH_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}
    return svcbench.spawn(cmd, env, stdout=out, stderr=subprocess.STDOUT)


def report(fz: Fuzzer, elapsed: float, alarms: list[str], seed: int) -> int:
    width = max(len(k) for k in fz.tallies)
    print(f"{'operation':<{width}}  {'cases':>6}  {'classes':<18} {'failed':>6}  {'hangs':>5}"
          "  statuses")
    for name, t in sorted(fz.tallies.items()):
        codes = " ".join(f"{c}:{n}" for c, n in sorted(t.statuses.items()))
        print(f"{name:<{width}}  {t.cases:>6}  {t.classes():<18} {t.failed:>6}  {t.hangs:>5}"
              f"  {codes}")
    failures = fz.failures() + [f"service log: {a}" for a in alarms]
    if failures:
        print(f"\n{len(failures)} failures (first 20 per operation):")
        for f in failures:
            print(f"- {f}")
    cases, errors, hangs = fz.totals()
    print(f"\nseed {seed}, {elapsed:.1f} s, {cases / elapsed:.0f} cases/s")
    print(f"bad-input cases tried: {cases}, 5xx: {errors}, hangs: {hangs}")
    failed = sum(t.failed for t in fz.tallies.values())
    return 1 if failed or errors or hangs or alarms else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=20 * CI_CASES,
                   help=f"examples per operation and mode (default {20 * CI_CASES}; CI: "
                        f"{CI_CASES}); push bodies: 7x")
    p.add_argument("--seed", type=int, default=None, help="repeat a run (default: random)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds an answer may take before it counts as a hang")
    a = p.parse_args(argv)
    if a.cases < 1 or a.timeout <= 0:
        p.error("--cases and --timeout must be positive")
    seed = a.seed if a.seed is not None else secrets.randbelow(2 ** 32)
    token = "fuzz-" + secrets.token_hex(16)
    tmp = Path(tempfile.mkdtemp(prefix="streamwatch-fuzz-"))
    port = svcbench.free_port()
    proc = None
    logfile = tmp / "service.log"
    try:
        with open(logfile, "wb") as out:
            proc = start_service(tmp, port, token, out)
            try:
                svcbench.wait_ready(proc, port, time.monotonic() + 60)
            except svcbench.BenchError as e:
                log(f"cannot run: {e}\n{logfile.read_text(errors='replace')[-2000:]}")
                return 2
            fz = Fuzzer(f"http://127.0.0.1:{port}", token, seed=seed, timeout=a.timeout)
            t0 = time.monotonic()
            try:
                log(f"seed {seed}; {a.cases} cases per operation and mode, port {port}")
                try:
                    fz.prepare()
                except RuntimeError as e:
                    log(f"cannot run: {e}")
                    return 2
                log("schema examples (positive, negative)")
                fz.run_schema(a.cases)
                log("no, unknown and malformed tokens")
                fz.run_auth(a.cases)
                log("hostile push bodies")
                before = fz.ingested()
                fz.run_bodies(a.cases)
                fz.check_pipeline(before)
            finally:
                fz.close()
            elapsed = time.monotonic() - t0
            alarms = [] if proc.poll() is None else [f"the service exited ({proc.returncode})"]
        text = logfile.read_text(errors="replace")
        found = [x for x in LOG_ALARMS if x in text]
        alarms += [f"{text.count(x)} x {x!r} in its log" for x in found]
        if found:
            first = min(text.find(x) for x in found)
            log("service log from the first alarm on:\n" + text[first:first + 3000])
        return report(fz, elapsed, alarms, seed)
    finally:
        svcbench.stop(proc)
        if os.environ.get("STREAMWATCH_FUZZ_KEEP"):
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
