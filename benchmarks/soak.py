#!/usr/bin/env python
"""Soak: the live service under steady push load for minutes - does memory stay flat, latency low?

    python benchmarks/soak.py [--minutes 10] [--rate 20000] [--rooms 500] [--clients 5]
                              [--probe-every 2] [--report-every 30] [--max-slope 1.0]
                              [--max-p99-ms 100] [--json FILE]

Why it is built this way (benchmarks/README.md has the report's fields):
- The real `streamwatch serve` as a subprocess on 127.0.0.1 (temporary data dir, tokens from
  STREAMWATCH_API_TOKENS), driven only through its outside faces, with the pieces of the service
  benchmark (benchmarks/service.py: start, readiness, scrape; benchmarks/loadgen.py: the paced
  push generator over copies of simulated rooms, which stage their own incidents, and the
  websocket clients) - nothing copied.
- One push generator runs for the whole soak; this process watches: every few seconds it reads
  the service's RSS and open fds from /proc, sends a probe (two `error_ratio` samples that fire
  `errors_high` on a primed `svc:probe-*` stream, as service.py does) and notes when the clients
  saw its alert; `--calm-after` (40) seconds later two calm samples resolve that probe's incident,
  so open incidents stay level as in a staffed ops room (left open, each probe adds one: ~900
  open incidents after 30 minutes, and the service's memory grows with them - that is state,
  not a leak; the `open` column shows it); every `--report-every` s it prints one line for that window (plus, to read
  memory and latency by: alert events held for feed resumes - a bounded buffer filling up - and
  journal checkpoints taken in the window, from the service's /metrics).
- Verdict at the end, each with its rule: memory flat = the least-squares slope of RSS against
  time over the second half of the run (the first half includes warm-up growth) below
  `--max-slope` MB/min; latency = p99 of accept->websocket (first client) over all probes below
  `--max-p99-ms`, every probe seen (the service runs with its feed's resume buffer at
  `--replay-buffer` events, 100 by default: that buffer is a bounded ring, 10,000 events in the
  shipped config, which at the soak's ~100 alert events/min takes ~100 min to fill - a
  10-minute run cannot tell its filling from a leak (measured: 1.48 MB/min with 10,000, 0.69
  with 100); at 100 it is full within the warm-up, so what still grows is growth to find.
  `--replay-buffer 0` keeps the config's); errors = no non-2xx answer (the generator's and the probes'),
  no transport error, no websocket client lost. Exit 0 if all hold, 1 if not (or if it could
  not measure), 2 for bad arguments. Bounded: every wait has a deadline, children end in
  `finally`.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import loadgen  # noqa: E402
import service as svcbench  # noqa: E402
from service import BenchError, percentile  # noqa: E402

__all__ = ["main", "rss_kb", "open_fds", "slope_per_min", "Window"]


def log(msg: str) -> None:
    print(f"[soak] {msg}", file=sys.stderr, flush=True)


def rss_kb(pid: int) -> int:
    """Resident set size of a process (VmRSS in /proc/PID/status), kB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute; None under 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return 60.0 * sum((t - mt) * (v - mv) for t, v in points) / var


class Window:
    """What one report line covers: counters at its start, probes seen during it."""

    def __init__(self, t: float, metrics: dict[str, float]) -> None:
        self.t, self.metrics = t, metrics
        self.latency_ms: list[float] = []
        self.probe_errors = 0


def _refused(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("streamwatch_requests_refused_total{"))


class Soak:
    """The run: children, samples of the service's health, probes, report lines."""

    def __init__(self, a: argparse.Namespace, tmp: Path) -> None:
        self.a, self.tmp = a, tmp
        self.port = svcbench.free_port()
        self.tag = f"soak{os.getpid()}"
        self.n_probes = int(a.minutes * 60 / a.probe_every) + 2
        self.sent: dict[str, float] = {}          # probe stream -> wall time its POST was sent
        self.seen: dict[str, float] = {}          # probe stream -> latency ms (first client)
        self.lost: set[str] = set()
        self.calmed: set[str] = set()             # probes whose incident was resolved again
        self.rss: list[tuple[float, float]] = []  # (elapsed s, RSS MB)
        self.rows: list[dict[str, Any]] = []
        self.probe_errors = 0
        self.duration = a.minutes * 60            # seconds of the soak proper
        self.svc: subprocess.Popen[Any] | None = None

    # -- probes ---------------------------------------------------------------------------------
    def prime_probes(self) -> None:
        """One calm sample per probe stream, so each probe hits an existing series (a new
        stream costs the service a row creation, which is not the alert path)."""
        body = loadgen.probe_prime_lines(self.tag, self.n_probes, time.time())
        status, text = svcbench.request(self.port, "POST", "/v1/samples", body, self.a.token,
                                        timeout=30)
        if status != 200:
            raise BenchError(f"priming the probe streams answered {status}: {text[:200]!r}")

    def send_probe(self, win: Window) -> None:
        k = len(self.sent)
        if k >= self.n_probes:
            return
        stream = loadgen.probe_stream(self.tag, k)
        sent = time.time()
        try:
            status, _ = svcbench.request(self.port, "POST", "/v1/samples",
                                         loadgen.probe_lines(stream, round(sent, 3)),
                                         self.a.token)
        except OSError:
            status = 0
        if status // 100 == 2:
            self.sent[stream] = sent
        else:
            win.probe_errors += 1
            self.probe_errors += 1

    def read_clients(self, lines: svcbench.Lines, until: float, win: Window) -> None:
        """Watcher lines until `until`: `seen STREAM FIRST LAST` gives a probe's latency."""
        while True:
            try:
                line = lines.get(until)
            except queue.Empty:
                return
            if line is None:                     # the clients' process ended: nothing to read
                lines.q.put(None)
                time.sleep(max(0.0, until - time.monotonic()))
                return
            if line.startswith("seen "):
                _, stream, first, _last = line.split()
                if stream in self.sent and stream not in self.seen:
                    ms = (float(first) - self.sent[stream]) * 1000
                    self.seen[stream] = ms
                    win.latency_ms.append(ms)

    def calm_probes(self, win: Window) -> None:
        """Resolve the incidents of probes older than `--calm-after` s (calm samples), so that
        open incidents stay level as in a staffed ops room (0: leave them open)."""
        after = self.a.calm_after
        if after <= 0:
            return
        now = time.time()
        for stream, sent in self.sent.items():
            if stream in self.calmed or now - sent < after:
                continue
            self.calmed.add(stream)
            try:
                status, _ = svcbench.request(self.port, "POST", "/v1/samples",
                                             loadgen.probe_calm_lines(stream, round(sent, 3),
                                                                      now), self.a.token)
            except OSError:
                status = 0
            if status // 100 != 2:
                win.probe_errors += 1
                self.probe_errors += 1

    def count_lost(self, win: Window, grace: float) -> None:
        now = time.time()
        for s, sent in self.sent.items():
            if s not in self.seen and s not in self.lost and now - sent > grace:
                self.lost.add(s)
                win.probe_errors += 1

    # -- one report line --------------------------------------------------------------------------
    def report(self, win: Window, t: float, elapsed: float) -> Window:
        assert self.svc is not None
        m = svcbench.scrape(self.port)
        dt = max(1e-9, t - win.t)
        rate = (m.get("streamwatch_samples_ingested_total", 0.0)
                - win.metrics.get("streamwatch_samples_ingested_total", 0.0)) / dt
        non2xx = int(_refused(m) - _refused(win.metrics)) + win.probe_errors
        clients = int(m.get("streamwatch_websocket_clients", 0))
        drops = max(0, self.a.clients - clients)
        lat = win.latency_ms
        ckpt = "streamwatch_journal_checkpoints_total"
        row = {"elapsed_s": round(elapsed, 1), "samples_per_s": round(rate, 1),
               "rss_mb": round(rss_kb(self.svc.pid) / 1024, 1), "fds": open_fds(self.svc.pid),
               "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
               "probes": len(lat), "errors": non2xx + drops, "non2xx": non2xx,
               "ws_drops": drops,
               # context for memory and latency: bounded buffers filling, state checkpoints
               "events_held": int(m.get("streamwatch_event_log_events", 0)),
               "series": int(m.get("streamwatch_series_tracked", 0)),
               "checkpoints": int(m.get(ckpt, 0) - win.metrics.get(ckpt, 0)),
               "open_incidents": int(sum(v for k, v in m.items()
                                         if k.startswith("streamwatch_open_incidents{"))),
               # journal entries whose fsync came over 50 ms after the write: pushes wait
               "slow_fsyncs": int(_slow(m, _FSYNC) - _slow(win.metrics, _FSYNC)),
               # the loop itself blocked over 50 ms on disk: [journal writes, store commits]
               # (detection waits for these)
               "stalls": [int(_slow(m, n) - _slow(win.metrics, n)) for n in _STALLS]}
        self.rows.append(row)
        ms = lambda x: "     -" if x is None else f"{x:6.1f}"  # noqa: E731
        print(f"{int(elapsed) // 60:3d}:{int(elapsed) % 60:02d}  {rate:>10,.0f}  "
              f"{row['rss_mb']:>7.1f}  {row['fds']:>4}  {ms(row['p50_ms'])}  "
              f"{ms(row['p99_ms'])}  {row['probes']:>6}  {row['errors']:>6}  "
              f"{row['events_held']:>6}  {row['open_incidents']:>5}  {row['checkpoints']:>4}  "
              f"{row['slow_fsyncs']:>5}  "
              f"{'/'.join(map(str, row['stalls'])):>6}"
              + (f"  (non-2xx {non2xx}, websocket drops {drops})" if row["errors"] else ""),
              flush=True)
        return Window(t, m)

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        a = self.a
        samples = svcbench.base_samples(a, self.tmp / "base.ndjson")
        # the generator's settings as benchmarks/service.py spells them: no probes of its own
        gen = argparse.Namespace(**{**vars(a), "probe_every": 0.0, "procs": 1,
                                    "cold_probes": True, "seconds": a.minutes * 60})
        watch = push = None
        with open(self.tmp / "service.log", "wb") as svc_log:
            try:
                self.svc = svcbench.start_service(a, self.tmp, self.port, svc_log)
                svcbench.wait_ready(self.svc, self.port, time.monotonic() + 60)
                svcbench.check_routes(self.port, a.token)
                self.prime_probes()
                watch, lines, _ = svcbench.start_watchers(a, self.port)
                if a.warmup > 0:
                    log(f"warm-up: every series once, then {a.warmup:g} s of load")
                    svcbench.run_push(gen, self.port, a.warmup, self.tag, 0, samples, prime=True)
                first_slot = int(a.warmup * a.rate / a.batch) + 1 if a.warmup > 0 else 0
                log(f"soak: {a.minutes:g} min at {a.rate:,.0f} samples/s over {a.rooms} rooms, "
                    f"{a.clients} websocket clients, a probe every {a.probe_every:g} s")
                print(" time   samples/s   RSS MB   fds  p50 ms  p99 ms  probes  errors  "
                      "events   open  ckpt  slow  stalls", flush=True)
                push = svcbench.spawn(svcbench.push_args(gen, self.port, gen.seconds, self.tag,
                                                         first_slot, 0, samples),
                                      stdout=subprocess.PIPE, text=True)
                self.loop(push, lines)
                pushed = json.loads(push.communicate(timeout=60)[0].strip().splitlines()[-1])
                svcbench.stop(watch, signal.SIGTERM, grace=15)
                rest = []
                while (line := lines.get(time.monotonic() + 10)) is not None:
                    rest.append(line)
                watched = json.loads(rest[-1]) if rest and rest[-1].startswith("{") else {}
            except (subprocess.TimeoutExpired, queue.Empty, ValueError, IndexError) as e:
                raise BenchError(f"a child did not finish as expected: {e!r}") from e
            finally:
                svcbench.stop(push, grace=5)
                svcbench.stop(watch, grace=5)
                svcbench.stop(self.svc, signal.SIGINT, grace=20)
        return {"pushed": pushed, "watched": watched}

    def loop(self, push: subprocess.Popen[Any], lines: svcbench.Lines) -> None:
        a, svc = self.a, self.svc
        assert svc is not None
        t0 = time.monotonic()
        end = t0 + a.minutes * 60
        win = Window(t0, svcbench.scrape(self.port))
        next_probe, next_sample, next_report = t0 + 0.5, t0, t0 + a.report_every
        while True:
            now = time.monotonic()
            if svc.poll() is not None:
                raise BenchError(f"the service exited with status {svc.returncode}")
            if now >= end + a.grace or (now >= end and len(self.seen) + len(self.lost)
                                        >= len(self.sent)):
                break
            if push.poll() is not None and now < end - 2:
                raise BenchError(f"the load generator ended early (exit {push.returncode})")
            if now >= next_probe and now < end:
                self.send_probe(win)
                self.calm_probes(win)
                next_probe += a.probe_every
            if now >= next_sample:
                self.rss.append((now - t0, rss_kb(svc.pid) / 1024))
                next_sample += a.sample_every
            if now >= next_report and now <= end:
                self.count_lost(win, a.grace)
                win = self.report(win, now, now - t0)
                next_report += a.report_every
            self.read_clients(lines, min(next_probe, next_sample, next_report, end + a.grace),
                              win)
        self.count_lost(win, 0.0)
        if time.monotonic() - win.t > 1.0 or win.latency_ms or win.probe_errors:
            self.report(win, time.monotonic(), min(time.monotonic() - t0, self.duration))


def verdict(a: argparse.Namespace, s: Soak, out: dict[str, Any]) -> dict[str, Any]:
    half = s.duration / 2
    second = [(t, mb) for t, mb in s.rss if t >= half]
    slope = slope_per_min(second)
    lat = list(s.seen.values())
    p99 = percentile(lat, 99)
    pushed, watched = out["pushed"], out["watched"]
    status = pushed.get("status", {})
    non2xx = sum(n for k, n in status.items() if k.isdigit() and int(k) // 100 != 2)
    transport = sum(n for k, n in status.items() if not k.isdigit())
    ws_lost = len(watched.get("failed", {})) + max(0, a.clients - watched.get("connected", 0))
    errors = non2xx + transport + s.probe_errors + ws_lost + pushed.get("dropped_batches", 0)
    checks = {
        "memory": slope is not None and slope < a.max_slope,
        "latency": p99 is not None and p99 < a.max_p99_ms and not s.lost,
        "errors": errors == 0 and not s.lost,
    }
    return {"rss_slope_mb_per_min": slope, "rss_points_second_half": len(second),
            "rss_mb": {"first": s.rss[0][1] if s.rss else None,
                       "half": second[0][1] if second else None,
                       "last": s.rss[-1][1] if s.rss else None},
            "latency_ms": {"p50": percentile(lat, 50), "p99": p99, "max": max(lat, default=None)},
            "probes_sent": len(s.sent), "probes_seen": len(lat), "probes_lost": len(s.lost),
            "accepted": pushed.get("accepted", 0), "rejected": pushed.get("rejected", 0),
            "status": status, "non2xx": non2xx, "transport_errors": transport,
            "probe_post_errors": s.probe_errors, "ws_clients_lost": ws_lost,
            "dropped_batches": pushed.get("dropped_batches", 0),
            "skipped_slots": pushed.get("skipped_slots", 0), "errors": errors,
            "checks": checks, "pass": all(checks.values()), "windows": s.rows}


def print_verdict(a: argparse.Namespace, v: dict[str, Any]) -> None:
    f = lambda x, d=1: "-" if x is None else f"{x:.{d}f}"  # noqa: E731
    ok = lambda k: "PASS" if v["checks"][k] else "FAIL"  # noqa: E731
    lat, rss = v["latency_ms"], v["rss_mb"]
    print("\n".join([
        f"soak: {a.minutes:g} min at {a.rate:,.0f} samples/s offered over {a.rooms} rooms, "
        f"{a.clients} websocket clients; {v['accepted']:,} samples accepted, "
        f"{v['rejected']:,} rejected, answers {v['status']}, "
        f"{v['skipped_slots']} slots skipped behind schedule; feed resume buffer "
        f"{a.replay_buffer or 'as configured'} events",
        f"  memory   RSS {f(rss['first'])} MB at start, {f(rss['half'])} MB at half time, "
        f"{f(rss['last'])} MB at the end; slope over the second half {f(v['rss_slope_mb_per_min'], 2)}"
        f" MB/min (least squares over {v['rss_points_second_half']} samples, one every "
        f"{a.sample_every:g} s)   bound < {a.max_slope:g} MB/min   {ok('memory')}",
        f"  latency  accept->websocket (first client) p50 {f(lat['p50'])}  p99 {f(lat['p99'])}  "
        f"max {f(lat['max'])} ms over {v['probes_seen']}/{v['probes_sent']} probes   "
        f"target p99 < {a.max_p99_ms:g} ms, every probe seen   {ok('latency')}",
        f"  errors   non-2xx {v['non2xx']}, transport {v['transport_errors']}, probe posts "
        f"{v['probe_post_errors']}, websocket clients lost {v['ws_clients_lost']}, probes lost "
        f"{v['probes_lost']}, batches dropped {v['dropped_batches']}   target none   "
        f"{ok('errors')}",
        f"verdict: {'PASS' if v['pass'] else 'FAIL'}"]), flush=True)


_FSYNC = "streamwatch_journal_append_seconds"
_STALLS = ("streamwatch_journal_write_seconds", "streamwatch_store_commit_seconds")


def _slow(m: dict[str, float], name: str) -> float:
    """Observations of histogram `name` over 50 ms so far (from its buckets)."""
    return m.get(f"{name}_count", 0.0) - m.get(f'{name}_bucket{{le="0.05"}}', 0.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, typ, default, what in (
            ("--minutes", float, 10.0, "length of the soak (after the warm-up)"),
            ("--rate", float, 20_000.0, "samples/s offered"),
            ("--batch", int, 1000, "samples per POST"),
            ("--rooms", int, 500, "rooms pushed (copies of the simulated ones)"),
            ("--base-rooms", int, 20, "rooms simulated"),
            ("--sim-minutes", float, 20.0, "base session length"),
            ("--seed", int, 4711, "simulator seed"),
            ("--clients", int, 5, "websocket clients"),
            ("--connections", int, 2, "keep-alive connections of the generator"),
            ("--warmup", float, 10.0, "seconds of load before the soak (every series once first)"),
            ("--probe-every", float, 2.0, "seconds between latency probes"),
            ("--calm-after", float, 40.0, "seconds after which a probe's incident is resolved by "
             "calm samples (0: left open, one more open incident per probe)"),
            ("--report-every", float, 30.0, "seconds per report line"),
            ("--sample-every", float, 5.0, "seconds between RSS readings"),
            ("--grace", float, 5.0, "seconds a probe may take before it counts as lost"),
            ("--max-slope", float, 1.0, "memory bound: RSS slope over the second half, MB/min"),
            ("--max-p99-ms", float, 100.0, "latency bound: p99 accept->websocket, ms"),
            ("--keep-resolved", int, 100, "resolved incidents the service holds in memory "
             "(0: the config's, 5,000, which at the soak's ~30 resolved a minute fills for ~170 "
             "minutes: bounded, but a 10-minute run cannot tell it from a leak)"),
            ("--replay-buffer", int, 100, "the service's feed resume buffer (events; 0: the "
             "config's); small, so that it is full early and its filling is not taken for a "
             "leak"),
            ("--config", Path, svcbench.ROOT / "config", "config/ to copy (without sources.toml)"),
            ("--detectors", Path, svcbench.ROOT / "detectors", "detectors/ of the service"),
            ("--token", str, os.environ.get("STREAMWATCH_BENCH_TOKEN", ""),
             "token with ingest and viewer roles (default: a random one, given to the service "
             "as admin unless STREAMWATCH_API_TOKENS is set)"),
            ("--json", Path, None, "write every number here")):
        p.add_argument(flag, type=typ, default=default, help=what)
    a = p.parse_args(argv)
    if not (a.minutes > 0 and a.rate > 0 and a.batch > 0 and a.clients >= 1
            and a.probe_every > 0 and a.report_every > 0 and a.sample_every > 0):
        p.error("--minutes, --rate, --batch, --clients and the intervals must be positive")
    a.token = a.token or "soak-" + secrets.token_hex(16)   # never starts with "-" (argv)
    if a.replay_buffer > 0:                   # read by the service subprocess's config loader
        os.environ["STREAMWATCH_FEED__REPLAY_BUFFER"] = str(a.replay_buffer)
    if a.keep_resolved > 0:
        os.environ["STREAMWATCH_STORAGE__KEEP_RESOLVED"] = str(a.keep_resolved)
    a.service_cmd, a.deflate, a.seconds = "", False, a.minutes * 60
    sys.path.insert(0, str(svcbench.ROOT / "src"))
    tmp = Path(tempfile.mkdtemp(prefix="streamwatch-soak-"))
    soak = Soak(a, tmp)
    try:
        out = soak.run()
    except BenchError as e:
        log(f"cannot measure: {e}")
        tail = (tmp / "service.log").read_bytes()[-2000:] if (tmp / "service.log").exists() else b""
        if tail:
            log("service log (tail):\n" + tail.decode(errors="replace"))
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    v = verdict(a, soak, out)
    print_verdict(a, v)
    if a.json:
        a.json.write_text(json.dumps(v, indent=2) + "\n")
    return 0 if v["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
