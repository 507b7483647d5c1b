#!/usr/bin/env python
"""Service benchmark: sustained push ingestion and accept→websocket alert latency, end to end.

    python benchmarks/service.py [--seconds 20] [--rate 100000] [--batch 1000] [--clients 100]
                                 [--port 0] [--rooms 2000] [--warmup 5] [--procs 1]
                                 [--token T] [--json FILE] [--strict]

Why it is built this way (benchmarks/README.md has the whole design and the report's fields):
- It measures what a user gets: the real `streamwatch serve` as a subprocess on 127.0.0.1,
  talked to only through CONTRACTS §5 (`POST /v1/samples`, `WS /v1/alerts/stream`, `/readyz`).
- Three kinds of process, so no measuring party shares an event loop with another: the service,
  the websocket clients (`loadgen.py watch`) and the generator (`loadgen.py push`, 1+ processes
  over disjoint rooms); one machine clock, so latency = first client's receive − POST's send.
- A warm-up first (every series once, then the same load), so the measured window does not pay
  for creating 33,000 series; the service queue is drained before measuring.
- Bounded: every wait has a deadline, the children stop by themselves, `finally` ends them. A
  report: exit 0 once measured unless `--strict`; 1 if it could not measure.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import shlex
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOADGEN = HERE / "loadgen.py"
TARGET_RATE, TARGET_P99_MS, TARGET_CLIENTS, TARGET_BATCH = 100_000.0, 50.0, 100, 1000

__all__ = ["main", "percentile", "judge", "BenchError"]


class BenchError(RuntimeError):
    """The benchmark could not measure (the reason is printed; exit status 1)."""


def log(msg: str) -> None:
    print(f"[service-bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values; None if there are none."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, -(-len(v) * q // 100) - 1))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process in seconds, from /proc (no psutil needed)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


class Lines:
    """A child's stdout, read line by line on a thread so the main loop can wait with deadlines."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def get(self, deadline: float) -> str | None:
        """Next line; None at EOF; raises queue.Empty at the deadline."""
        return self.q.get(timeout=max(0.0, deadline - time.monotonic()))


def request(port: int, method: str, path: str, body: bytes = b"", token: str = "",
            timeout: float = 5.0) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/x-ndjson"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        c.request(method, path, body=body or None, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_ready(proc: subprocess.Popen[bytes], port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the service exited with status {proc.returncode} before /readyz")
        try:
            if request(port, "GET", "/readyz", timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError("the service did not answer /readyz with 200 in time")


def check_routes(port: int, token: str) -> None:
    """One harmless sample: a 404/405 means the push route is still a placeholder."""
    sample = json.dumps({"stream": "svc:bench-check", "metric": "error_ratio",
                         "ts": round(time.time(), 3), "value": 0.0}).encode() + b"\n"
    status, body = request(port, "POST", "/v1/samples", sample, token)
    if status in (404, 405):
        raise BenchError(f"POST /v1/samples answers {status}: the route is not there (placeholder?)")
    if status in (401, 403):
        raise BenchError(f"POST /v1/samples answers {status}: pass an ingest token with --token "
                         "(or STREAMWATCH_BENCH_TOKEN)")
    if status // 100 != 2 or "accepted" not in json.loads(body or b"{}"):
        raise BenchError(f"POST /v1/samples answers {status}: {body[:300]!r}")


def scrape(port: int) -> dict[str, float]:
    """The service's own /metrics (streamwatch_*), series text -> value; empty if unavailable."""
    try:
        status, body = request(port, "GET", "/metrics")
    except OSError:
        return {}
    out = {}
    for line in body.decode(errors="replace").splitlines() if status == 200 else ():
        if line.startswith("streamwatch_"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def service_view(m0: dict[str, float], m1: dict[str, float]) -> dict[str, Any]:
    """What the service says about the window: pipeline runs, accept->processed quantiles (as
    histogram bucket bounds), discarded samples, series tracked."""
    d = {k: v - m0.get(k, 0.0) for k, v in m1.items()}
    pre = "streamwatch_batch_latency_seconds_bucket{le="
    buckets = sorted((float(k[len(pre) + 1:-2]), v) for k, v in d.items() if k.startswith(pre))

    def q(f: float) -> float | None:
        total = buckets[-1][1] if buckets else 0
        return next((1000 * le for le, n in buckets if total and n >= f * total), None)
    return {"pipeline_runs": d.get("streamwatch_batches_processed_total"),
            "batch_latency_ms_le": {"p50": q(0.5), "p99": q(0.99)},
            "discarded": {k.split('"')[1]: v for k, v in d.items()
                          if k.startswith("streamwatch_samples_discarded_total{")},
            "series_tracked": m1.get("streamwatch_series_tracked")}


def wait_drained(port: int, deadline: float) -> int:
    """Poll /readyz until the service queue is empty; returns what is still queued."""
    queued = -1
    while time.monotonic() < deadline:
        status, body = request(port, "GET", "/readyz")
        queued = int(json.loads(body).get("queued_samples", 0)) if status == 200 else -1
        if queued == 0:
            return 0
        time.sleep(0.1)
    return queued


def spawn(args: list[str], extra_env: dict[str, str] | None = None,
          **kw: Any) -> subprocess.Popen[Any]:
    """A Python child that imports streamwatch from src/ even when it is not installed."""
    env = {**os.environ, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(ROOT / "src"), env.get("PYTHONPATH")) if x)
    return subprocess.Popen([sys.executable, *args], env=env, **kw)


def stop(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def push_args(a: argparse.Namespace, port: int, seconds: float, tag: str, first_slot: int,
              shard: int, samples: Path, prime: bool = False) -> list[str]:
    """A generator's command; a priming (warm-up) run sends no probes but creates the probe
    streams of the measured run (same tag) unless --cold-probes."""
    probes = 0 if a.cold_probes else int(a.seconds / a.probe_every) + 5 if a.probe_every else 0
    extra = (["--prime"] + (["--prime-probes", str(probes)] if shard == 0 else [])
             if prime else [])
    return [str(LOADGEN), "push", "--port", str(port), "--seconds", str(seconds),
            "--rate", str(a.rate / a.procs), "--batch", str(a.batch), "--rooms", str(a.rooms),
            "--samples", str(samples), "--shard", str(shard), "--shards", str(a.procs),
            "--connections", str(a.connections), "--first-slot", str(first_slot),
            "--probe-every", str(a.probe_every if shard == 0 and not prime else 0),
            "--tag", tag, "--token", a.token] + extra


def run_push(a: argparse.Namespace, port: int, seconds: float, tag: str, first_slot: int,
             samples: Path, prime: bool = False) -> list[dict[str, Any]]:
    procs = [spawn(push_args(a, port, seconds, tag, first_slot, k, samples, prime),
                   stdout=subprocess.PIPE, text=True) for k in range(a.procs)]
    try:
        outs = [p.communicate(timeout=seconds + (160 if prime else 40))[0] for p in procs]
    except subprocess.TimeoutExpired as e:
        raise BenchError("the load generator did not stop by itself in time") from e
    finally:
        for p in procs:
            stop(p, grace=2)
    bad = [p.returncode for p in procs if p.returncode != 0]
    if bad:
        raise BenchError(f"the load generator failed (exit {bad})")
    return [json.loads(o.strip().splitlines()[-1]) for o in outs]


def base_samples(a: argparse.Namespace, path: Path) -> Path:
    """The simulated rooms the generators copy, written once for every generator process."""
    from streamwatch.sim import Simulator
    log(f"simulating {a.base_rooms} base rooms × {a.sim_minutes:g} min (copied to {a.rooms} rooms)")
    sim = Simulator(a.seed, a.base_rooms, a.sim_minutes)
    with open(path, "w") as fh:
        fh.writelines(json.dumps(s) + "\n" for s in sim.samples()
                      if s["ts"] >= sim.start_ts + 120)            # skip the ramp-up
    return path


def start_service(a: argparse.Namespace, tmp: Path, port: int, out: Any) -> subprocess.Popen[Any]:
    cfg = tmp / "config"                                           # isolated: no pull sources
    shutil.copytree(a.config, cfg, ignore=shutil.ignore_patterns("sources.toml"))
    cmd = ["-m", "streamwatch", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--config", str(cfg), "--detectors", str(a.detectors), "--data-dir", str(tmp / "data")]
    if a.service_cmd:
        cmd = shlex.split(a.service_cmd.format(port=port, config=cfg, detectors=a.detectors,
                                               data_dir=tmp / "data"))
    log(f"starting the service on 127.0.0.1:{port}")
    # serve needs tokens: unless the environment names its own, the service gets ours (admin)
    tokens = {} if os.environ.get("STREAMWATCH_API_TOKENS") else {
        "STREAMWATCH_API_TOKENS": f"admin:{a.token}"}
    return spawn(cmd, tokens, stdout=out, stderr=subprocess.STDOUT)


def start_watchers(a: argparse.Namespace, port: int) -> tuple[subprocess.Popen[str], Lines, int]:
    watch = spawn([str(LOADGEN), "watch", "--port", str(port), "--clients", str(a.clients),
                   "--seconds", str(a.warmup + a.seconds + 150), "--token", a.token]
                  + (["--deflate"] if a.deflate else []), stdout=subprocess.PIPE, text=True)
    lines = Lines(watch)
    try:
        first = lines.get(time.monotonic() + 60)
    except queue.Empty:
        first = "(no answer in 60 s)"
    if not first or not first.startswith("ready "):
        raise BenchError(f"websocket clients did not get ready: {first!r}")
    log(f"{first.split()[1]}/{a.clients} websocket clients connected")
    return watch, lines, int(first.split()[1])


def await_probes(lines: Lines, probes: set[str], grace: float) -> None:
    """Until every client has every probe (the watchers say `probe S`), at most `grace` s."""
    pending, deadline = set(probes), time.monotonic() + grace
    while pending:
        try:
            line = lines.get(deadline)
        except queue.Empty:
            return
        if line is None:
            return
        if line.startswith("probe "):
            pending.discard(line[6:])


def measure(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    samples = base_samples(a, tmp / "base.ndjson")
    port = a.port or free_port()
    svc = watch = None
    with open(tmp / "service.log", "wb") as svc_log:
        try:
            svc = start_service(a, tmp, port, svc_log)
            wait_ready(svc, port, time.monotonic() + 60)
            check_routes(port, a.token)
            watch, lines, _ = start_watchers(a, port)
            first_slot, tag = 0, f"{os.getpid()}"
            if a.warmup > 0:
                log(f"warm-up: every series once, then {a.warmup:g} s at {a.rate:,.0f} samples/s")
                run_push(a, port, a.warmup, tag, 0, samples, prime=True)
                first_slot = int(a.warmup * a.rate / a.batch / a.procs) + 1
                if left := wait_drained(port, time.monotonic() + 30):
                    log(f"warning: {left} samples still queued after the warm-up")
            log(f"measuring: {a.seconds:g} s at {a.rate:,.0f} samples/s in batches of {a.batch}")
            m0 = scrape(port)
            c0 = (cpu_seconds(svc.pid), cpu_seconds(watch.pid), machine_busy(), time.monotonic())
            pushed = run_push(a, port, a.seconds, tag, first_slot, samples)
            c1 = (cpu_seconds(svc.pid), cpu_seconds(watch.pid), machine_busy(), time.monotonic())
            probes = {p["stream"]: p for out in pushed for p in out["probes"]}
            await_probes(lines, set(probes), a.grace)
            backlog = wait_drained(port, time.monotonic() + 5)
            view = service_view(m0, scrape(port))
            stop(watch, signal.SIGTERM, grace=15)
            rest = []
            while (line := lines.get(time.monotonic() + 5)) is not None:
                rest.append(line)
            watched = json.loads(rest[-1]) if rest and rest[-1].startswith("{") else {}
        finally:
            stop(watch, grace=5)
            stop(svc, signal.SIGINT, grace=15)
    if svc.returncode not in (0, -signal.SIGINT):
        log(f"note: the service exited with status {svc.returncode}")
    return {"wall_s": c1[3] - c0[3], "service_cpu_s": c1[0] - c0[0], "watch_cpu_s": c1[1] - c0[1],
            "machine_cores": (c1[2][0] - c0[2][0]) / max(1, c1[2][1] - c0[2][1]) * (os.cpu_count() or 1),
            "pushed": pushed, "probes": probes, "watched": watched, "backlog_after": backlog,
            "service_view": view}


def summarize(a: argparse.Namespace, m: dict[str, Any]) -> dict[str, Any]:
    pushed, w = m["pushed"], m["watched"]
    seen = w.get("probes", {})
    first_ms, all_ms, ts_mismatch = [], [], 0
    for s, p in m["probes"].items():
        if s in seen:
            first_ms.append((seen[s]["first"] - p["sent"]) * 1000)
            all_ms.append((seen[s]["last"] - p["sent"]) * 1000)
            ts_mismatch += seen[s]["ts"] != p["ts"]
    wall = max(m["wall_s"], 1e-9)
    # per generator, over its paced window: first send .. last send + one interval (= the
    # offered rate if it kept up); generators start a little apart, so their rates are summed
    accepted = sum(o["accepted"] for o in pushed)
    rate = sum(o["accepted"] / max(1e-9, o["last_sent"] - o["started"] + a.batch * a.procs / a.rate)
               for o in pushed)
    connected = w.get("connected", 0)
    every = bool(m["probes"]) and all(s in seen and seen[s]["clients"] >= connected
                                      and connected for s in m["probes"])
    lat = {q: percentile(first_ms, q) for q in (50, 90, 99)} | {"max": max(first_ms, default=None)}
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()
                   if k not in ("token", "json")},
        "rooms": sum(o["rooms"] for o in pushed), "streams": sum(o["streams"] for o in pushed),
        "samples_per_s": rate, "accepted": accepted,
        "rejected": sum(o["rejected"] for o in pushed),
        "status_429": sum(o["too_many"] for o in pushed),
        "dropped_batches": sum(o["dropped_batches"] for o in pushed),
        "skipped_slots": sum(o["skipped_slots"] for o in pushed),
        "status": {k: sum(o["status"].get(k, 0) for o in pushed)
                   for k in sorted({k for o in pushed for k in o["status"]})},
        "errors": [e for o in pushed for e in o["first_errors"]][:5],
        "post_rtt_ms": pushed[0]["rtt_ms"],
        "probes_sent": len(m["probes"]), "probes_seen": len(first_ms),
        "probe_ts_mismatch": ts_mismatch,
        "latency_ms": lat, "latency_all_clients_ms": {"p99": percentile(all_ms, 99),
                                                      "max": max(all_ms, default=None)},
        "clients": a.clients, "clients_connected": connected,
        "clients_failed": len(w.get("failed", {})),
        "client_failures": list(w.get("failed", {}).values())[:3],
        "every_client_every_probe": every, "ws_messages": w.get("messages"),
        "cpu_pct": (cpu := {"service": 100 * m["service_cpu_s"] / wall,
                            "loadgen": 100 * sum(o["cpu_s"] for o in pushed) / wall,
                            "clients": 100 * m["watch_cpu_s"] / wall,
                            "machine": 100 * m["machine_cores"]})
        | {"others": max(0.0, cpu["machine"] - cpu["service"] - cpu["loadgen"] - cpu["clients"]),
           "cores": 100 * (os.cpu_count() or 1)},
        "backlog_after": m["backlog_after"],
        "service_cpu_us_per_sample": 1e6 * m["service_cpu_s"] / max(1, accepted),
        "service_view": m["service_view"],
    }


def judge(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, PASS|FAIL|n/a) rows; load targets are n/a below the target load."""
    cfg = r["config"]
    at_load = (cfg["rate"] >= TARGET_RATE and cfg["batch"] == TARGET_BATCH
               and cfg["clients"] >= TARGET_CLIENTS)
    rate, p99 = r["samples_per_s"], r["latency_ms"][99]

    def verdict(ok: bool, load_bound: bool = True) -> str:
        return "n/a" if load_bound and not at_load else ("PASS" if ok else "FAIL")
    # the generator offers exactly --rate: kept up = within 1 % of it and nothing held back
    kept_up = not (r["status_429"] or r["skipped_slots"] or r["dropped_batches"])
    return [
        (f"push ≥ {TARGET_RATE:,.0f} samples/s (batches of {TARGET_BATCH})", f"{rate:,.0f}",
         verdict(rate >= 0.99 * TARGET_RATE and kept_up)),
        (f"p99 accept→websocket ≤ {TARGET_P99_MS:g} ms",
         "none seen" if p99 is None else f"{p99:.1f} ms",
         verdict(p99 is not None and p99 <= TARGET_P99_MS and r["probes_seen"] == r["probes_sent"])),
        (f"{TARGET_CLIENTS} websocket clients connected", f"{r['clients_connected']}",
         verdict(r["clients_connected"] >= TARGET_CLIENTS)),
        ("every client received every probe alert",
         f"{'yes' if r['every_client_every_probe'] else 'no'} ({r['probes_seen']}/{r['probes_sent']} seen)",
         verdict(r["every_client_every_probe"], load_bound=False)),
    ]


def report(r: dict[str, Any]) -> None:
    c, lat, cpu, v, rtt = r["config"], r["latency_ms"], r["cpu_pct"], r["service_view"], \
        r["post_rtt_ms"]
    ms = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731
    us, wsm = r["service_cpu_us_per_sample"], r["ws_messages"] or {}
    out = [
        f"streamwatch service benchmark: {c['seconds']:g} s at {c['rate']:,.0f} samples/s offered, "
        f"batches of {c['batch']}, {r['rooms']:,} rooms ({r['streams']:,} streams), {c['clients']} "
        f"websocket clients, {c['procs']} load process(es), warm-up {c['warmup']:g} s",
        f"  pushed (accepted)      {r['samples_per_s']:>12,.0f} samples/s   ({r['accepted']:,} "
        f"accepted, {r['rejected']:,} rejected, {r['status_429']} × 429, {r['dropped_batches']} "
        f"batches dropped, {r['skipped_slots']} slots skipped behind schedule)",
        f"  HTTP answers           {r['status']}   POST round trip p50 {ms(rtt['p50'])} ms, "
        f"p99 {ms(rtt['p99'])} ms, max {ms(rtt['max'])} ms",
        *(f"    e.g. {e[:200]}" for e in r["errors"]),
        f"  accept→websocket       p50 {ms(lat[50])}  p90 {ms(lat[90])}  p99 {ms(lat[99])}  max "
        f"{ms(lat['max'])} ms   (first client; {r['probes_seen']}/{r['probes_sent']} probes seen; "
        f"last client p99 {ms(r['latency_all_clients_ms']['p99'])} ms)",
        f"  websocket clients      {r['clients_connected']}/{r['clients']} connected, "
        f"{r['clients_failed']} failed; every client got every probe: "
        f"{'yes' if r['every_client_every_probe'] else 'NO'}; messages per client "
        f"{wsm.get('min')}..{wsm.get('max')}",
        *(f"    e.g. {f}" for f in r["client_failures"]),
        f"  CPU (% of one core)    service {cpu['service']:.0f}, load generator "
        f"{cpu['loadgen']:.0f}, websocket clients {cpu['clients']:.0f}, other processes "
        f"{cpu['others']:.0f}; machine {cpu['machine']:.0f} of {cpu['cores']:.0f}; queued after "
        f"the run: {r['backlog_after']}",
        f"  service CPU per sample {us:.2f} µs  (one core at this cost: "
        f"{1e6 / us if us else float('nan'):,.0f} samples/s)"]
    if v["pipeline_runs"]:
        out.append(f"  service /metrics       {v['pipeline_runs']:,.0f} pipeline runs "
                   f"({r['accepted'] / v['pipeline_runs']:,.0f} samples each), accept→processed "
                   f"p50 ≤ {ms(v['batch_latency_ms_le']['p50'])} ms, p99 ≤ "
                   f"{ms(v['batch_latency_ms_le']['p99'])} ms, discarded {v['discarded']}, "
                   f"{v['series_tracked'] or 0:,.0f} series tracked")
    if cpu["others"] > 25:
        out.append("  NOTE: other processes used the machine during the window: numbers are "
                   "pessimistic")
    out += ["  targets:", *(f"    {name:<52} {value:>22}   {verdict}"
                            for name, value, verdict in judge(r))]
    print("\n".join(out))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, typ, default, what in (
            ("--seconds", float, 20.0, "measured window"),
            ("--rate", float, 100_000.0, "samples/s offered"),
            ("--batch", int, 1000, "samples per POST"),
            ("--clients", int, 100, "websocket clients"),
            ("--port", int, 0, "service port (0: a free one)"),
            ("--rooms", int, 2000, "rooms pushed (copies of the simulated ones)"),
            ("--base-rooms", int, 20, "rooms simulated"),
            ("--sim-minutes", float, 20.0, "base session length"),
            ("--seed", int, 4711, "simulator seed"),
            ("--warmup", float, 5.0, "seconds of load before measuring (0: none, no priming)"),
            ("--procs", int, 1, "load generator processes"),
            ("--connections", int, 4, "keep-alive connections per generator process"),
            ("--probe-every", float, 0.5, "seconds between latency probes"),
            ("--grace", float, 5.0, "seconds to wait for the last probes"),
            ("--config", Path, ROOT / "config", "config/ to copy (without sources.toml)"),
            ("--detectors", Path, ROOT / "detectors", "detectors/ of the service"),
            ("--token", str, os.environ.get("STREAMWATCH_BENCH_TOKEN", ""),
             "bearer token with ingest and viewer roles (env STREAMWATCH_BENCH_TOKEN; default: "
             "a random one, given to the service as admin unless STREAMWATCH_API_TOKENS is set)"),
            ("--service-cmd", str, "", "arguments to python instead of `-m streamwatch serve "
             "…`, with {port} {config} {detectors} {data_dir}"),
            ("--json", Path, None, "write every number here")):
        p.add_argument(flag, type=typ, default=default, help=what)
    for flag, what in (("--cold-probes", "probe streams are new series (not made in warm-up)"),
                       ("--deflate", "clients offer permessage-deflate"),
                       ("--strict", "exit 1 if a target FAILs")):
        p.add_argument(flag, action="store_true", help=what)
    a = p.parse_args(argv)
    a.token = a.token or "bench-" + secrets.token_hex(16)   # never starts with "-" (argv)
    if not (a.seconds > 0 and a.rate > 0 and a.batch > 0 and a.clients >= 1 and a.procs >= 1):
        p.error("--seconds, --rate, --batch, --clients and --procs must be positive")
    sys.path.insert(0, str(ROOT / "src"))
    tmp = Path(tempfile.mkdtemp(prefix="streamwatch-svcbench-"))
    try:
        r = summarize(a, measure(a, tmp))
    except BenchError as e:
        log(f"cannot measure: {e}")
        tail = (tmp / "service.log").read_bytes()[-2000:] if (tmp / "service.log").exists() else b""
        if tail:
            log("service log (tail):\n" + tail.decode(errors="replace"))
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(r)
    if a.json:
        a.json.write_text(json.dumps(r, indent=2, default=str) + "\n")
    return 1 if a.strict and any(v == "FAIL" for *_, v in judge(r)) else 0


if __name__ == "__main__":
    sys.exit(main())
