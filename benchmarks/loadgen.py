#!/usr/bin/env python
"""The load processes of benchmarks/service.py: `push` (samples over HTTP) and `watch` (websockets).

    python benchmarks/loadgen.py push --port P [--seconds 20] [--rate 100000] [--batch 1000]
                                      [--samples FILE] [--rooms 2000] [--shard 0 --shards 1] ...
    python benchmarks/loadgen.py watch --port P [--clients 100] [--seconds 60] ...

Why it is built this way (benchmarks/README.md has the whole design):
- `push` must cost far less CPU than the service it measures, on the same 2 cores: no HTTP
  library (httpx tops out near 0.3 M samples/s) but raw asyncio streams on uvloop, keep-alive
  HTTP/1.1, one write per request (so Nagle never delays it), and bodies joined from pre-encoded
  pieces: per (room copy, series) a head `{"stream":…,"metric":…,"ts":`, per base sample a tail
  `,"value":…,"labels":…}`, and between them the event time of sending (ts = now).
- Many rooms from few simulated ones: copy c of `room-003` is `room-003-c07`, reading the base
  session from its own offset; shards (processes) take disjoint copies, so one series never gets
  two samples with one event time.
- Probes: a fresh stream `svc:probe-TAG-K` with `error_ratio` 0.5 at ts − 11 s and ts completes
  the `errors_high` rule (≥ 0.2 for 10 s of event time); the wall time its POST was written is
  kept (rewritten on a 429 retry). `watch` notes when each client first saw the probe's alert.
- `watch` prints `ready N FAILED` once every client has its snapshot (or failed), `seen STREAM
  FIRST LAST` (wall times the first and the last client got it) and `probe STREAM` once every
  connected client has that probe; both commands stop by themselves (deadline, batch count,
  SIGTERM) and print one JSON object as their last line.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = ["Workload", "load_base", "build_workload", "probe_stream", "probe_prime_lines",
           "probe_lines", "PushStats", "push", "watch", "main"]

PROBE_PREFIX = "svc:probe-"
_HTTP_TIMEOUT = 10.0


# -- the samples --------------------------------------------------------------------------------
@dataclass
class Workload:
    """Pre-encoded pieces of every sample this shard sends; `body(j0, n, ts)` joins n of them."""
    heads: np.ndarray          # object [copies, series]: b'{"stream":"room-1-c0","metric":"m","ts":'
    series: np.ndarray         # int [N]: base sample -> series index
    tails: np.ndarray          # object [N]: b',"value":1.0,"labels":{...}}\n'
    offsets: np.ndarray        # int [copies]: where each copy starts in the base session

    @property
    def copies(self) -> int:
        return int(self.heads.shape[0])

    def body(self, j0: int, n: int, ts: bytes) -> bytes:
        """Samples j0 .. j0+n-1 of the endless copy-interleaved sequence, all at event time ts."""
        j = np.arange(j0, j0 + n)
        c = j % self.copies
        k = (j // self.copies + self.offsets[c]) % len(self.tails)
        parts = np.empty(3 * n, dtype=object)
        parts[0::3] = self.heads[c, self.series[k]]
        parts[1::3] = ts
        parts[2::3] = self.tails[k]
        return b"".join(parts.tolist())

    def prime(self, batch: int, ts: bytes) -> list[bytes]:
        """Bodies carrying every (copy, series) once, with its first base value: sent before a
        warm-up so the measured run does not pay for creating tens of thousands of series."""
        _, first = np.unique(self.series, return_index=True)
        c, k = np.divmod(np.arange(self.copies * len(first)), len(first))
        parts = np.empty(3 * len(c), dtype=object)
        parts[0::3] = self.heads[c, self.series[first[k]]]
        parts[1::3] = ts
        parts[2::3] = self.tails[first[k]]
        flat = parts.tolist()
        return [b"".join(flat[i:i + 3 * batch]) for i in range(0, len(flat), 3 * batch)]


def load_base(path: Path | None, seed: int, base_rooms: int, minutes: float,
              skip_s: float) -> list[dict[str, Any]]:
    """Base samples (arrival order) from an NDJSON file, or simulated here; ramp-up skipped."""
    if path is not None:
        with open(path, "rb") as fh:
            return [orjson.loads(line) for line in fh if line.strip()]
    from streamwatch.sim import Simulator
    sim = Simulator(seed, base_rooms, minutes)
    start = sim.start_ts + skip_s
    return [s for s in sim.samples() if s["ts"] >= start]


def build_workload(base: list[dict[str, Any]], copies: int, shard: int = 0,
                   shards: int = 1) -> Workload:
    """Encode the pieces for this shard's copies (copy c belongs to shard c % shards)."""
    if not base:
        raise ValueError("no base samples")
    mine = [c for c in range(copies) if c % shards == shard]
    if not mine:
        raise ValueError(f"shard {shard} of {shards} has no room copy (copies={copies})")
    keys: dict[tuple[str, str], int] = {}
    series = np.empty(len(base), dtype=np.int64)
    tails = np.empty(len(base), dtype=object)
    for i, s in enumerate(base):
        series[i] = keys.setdefault((s["stream"], s["metric"]), len(keys))
        rest = {"value": s["value"]}
        if s.get("labels"):
            rest["labels"] = s["labels"]
        tails[i] = b"," + orjson.dumps(rest)[1:] + b"\n"
    heads = np.empty((len(mine), len(keys)), dtype=object)
    for row, c in enumerate(mine):
        for (stream, metric), col in keys.items():
            heads[row, col] = (b'{"stream":' + orjson.dumps(f"{stream}-c{c:02d}") + b',"metric":'
                               + orjson.dumps(metric) + b',"ts":')
    offsets = (np.array(mine, dtype=np.int64) * len(base)) // copies
    return Workload(heads, series, tails, offsets)


def probe_stream(tag: str, k: int) -> str:
    return f"{PROBE_PREFIX}{tag}-{k}"


def probe_prime_lines(tag: str, count: int, ts: float) -> bytes:
    """One calm sample (error_ratio 0 at ts − 60 s) per probe stream, so the measured probes hit
    existing series: creating a series is a cost of its own, not the alert path's."""
    return b"".join(orjson.dumps({"stream": probe_stream(tag, k), "metric": "error_ratio",
                                  "ts": round(ts - 60.0, 3), "value": 0.0}) + b"\n"
                    for k in range(count))


def probe_lines(stream: str, ts: float) -> bytes:
    """Two samples that make `errors_high` fire at event time `ts` on a fresh stream."""
    return b"".join(orjson.dumps({"stream": stream, "metric": "error_ratio", "ts": t,
                                  "value": 0.5}) + b"\n" for t in (round(ts - 11.0, 3), ts))


def probe_calm_lines(stream: str, probe_ts: float, now: float) -> bytes:
    """Two calm samples (error_ratio 0 just after the probe and at `now`, at least the rule's
    `clear_after` of 30 s later) that resolve a probe's incident: a soak whose probes stayed open
    would grow by one open incident per probe - its own workload, not the service's leak."""
    return b"".join(orjson.dumps({"stream": stream, "metric": "error_ratio", "ts": t,
                                  "value": 0.0}) + b"\n"
                    for t in (round(probe_ts + 1.0, 3), round(now, 3)))


# -- push ---------------------------------------------------------------------------------------
@dataclass
class PushStats:
    """What the generator saw; `accepted`/`rejected` are summed from the service's answers."""
    accepted: int = 0
    rejected: int = 0
    status: dict[str, int] = field(default_factory=dict)
    too_many: int = 0                      # 429 answers
    dropped_batches: int = 0               # gave up after retries
    skipped_slots: int = 0                 # fell > 1 s behind schedule: slots dropped, not burst
    cpu_s: float = 0.0                     # this process, over the paced run only
    first_errors: list[str] = field(default_factory=list)
    rtt_ms: list[float] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    last_sent: float = 0.0                 # wall time the last batch was written


class _Http:
    """One keep-alive HTTP/1.1 connection; `post` writes one request and reads its answer."""

    def __init__(self, host: str, port: int, head: bytes) -> None:
        self.host, self.port, self.head = host, port, head
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        # uvicorn answers these routes with Content-Length (no chunked bodies to decode)
        data = await self.reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, headers, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class _Pusher:
    """Paced batches over a few connections; probes ride in the first batch after they are due."""

    def __init__(self, a: argparse.Namespace, work: Workload) -> None:
        self.a, self.work = a, work
        self.stats = PushStats()
        self.interval = a.batch / a.rate
        self.t0 = 0.0
        self.slot = 0
        self.first = a.first_slot                  # continue the sequence after a warm-up run
        self.max_slots = a.max_batches or int(a.seconds * a.rate / a.batch) + 1
        self.pause_until = 0.0
        self.last_ts = 0.0
        self.next_probe = 0.0
        auth = f"Authorization: Bearer {a.token}\r\n".encode() if a.token else b""
        self.head = (f"POST /v1/samples HTTP/1.1\r\nHost: {a.host}:{a.port}\r\n"
                     "Content-Type: application/x-ndjson\r\n").encode() + auth

    def _ts(self) -> bytes:
        t = max(round(time.time(), 3), round(self.last_ts + 0.001, 3))
        self.last_ts = t
        return repr(t).encode()

    def _take_slot(self) -> int | None:
        now = time.monotonic()
        if self.slot >= self.max_slots or now >= self.t0 + self.a.seconds:
            return None
        behind = now - (self.t0 + self.slot * self.interval)
        if behind > 1.0:                            # do not burst to catch up after a stall
            skip = int(behind / self.interval)
            self.stats.skipped_slots += skip
            self.slot += skip
        s, self.slot = self.slot, self.slot + 1
        return s

    async def _worker(self) -> None:
        http = _Http(self.a.host, self.a.port, self.head)
        try:
            while (s := self._take_slot()) is not None:
                delay = max(self.t0 + s * self.interval, self.pause_until) - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                probe = None
                if self.a.probe_every > 0 and time.monotonic() >= self.next_probe:
                    self.next_probe = time.monotonic() + self.a.probe_every
                    probe = {"stream": probe_stream(self.a.tag, len(self.stats.probes))}
                    self.stats.probes.append(probe)
                await self._send(http, s, probe)
        finally:
            http.close()

    async def _send(self, http: _Http, s: int, probe: dict[str, Any] | None) -> None:
        st = self.stats
        for attempt in range(self.a.retries + 1):
            ts = self._ts()
            body = self.work.body((self.first + s) * self.a.batch, self.a.batch, ts)
            if probe is not None:
                probe["ts"] = float(ts)
                body = probe_lines(probe["stream"], float(ts)) + body
            sent = self.stats.last_sent = time.time()
            try:
                status, headers, data = await asyncio.wait_for(http.post(body), _HTTP_TIMEOUT)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as e:
                http.close()
                st.status[type(e).__name__] = st.status.get(type(e).__name__, 0) + 1
                continue
            st.rtt_ms.append((time.time() - sent) * 1000)
            st.status[str(status)] = st.status.get(str(status), 0) + 1
            if status == 429:
                st.too_many += 1
                retry = float(headers.get(b"retry-after", b"1") or 1)
                self.pause_until = max(self.pause_until, time.monotonic() + retry)
                await asyncio.sleep(max(0.0, self.pause_until - time.monotonic()))
                continue
            if status // 100 == 2:
                ans = orjson.loads(data)
                st.accepted += int(ans.get("accepted", 0))
                st.rejected += int(ans.get("rejected", 0))
                if ans.get("errors") and len(st.first_errors) < 5:
                    st.first_errors.append(orjson.dumps(ans["errors"][:3]).decode())
                if probe is not None:
                    probe["sent"] = sent
            elif len(st.first_errors) < 5:
                st.first_errors.append(f"HTTP {status}: {data[:300].decode(errors='replace')}")
            return
        st.dropped_batches += 1

    async def _prime(self) -> None:
        http = _Http(self.a.host, self.a.port, self.head)
        ts = self._ts()
        bodies = self.work.prime(self.a.batch, ts)
        if self.a.prime_probes:
            bodies.insert(0, probe_prime_lines(self.a.tag, self.a.prime_probes, float(ts)))
        try:
            for body in bodies:
                for _ in range(self.a.retries + 1):
                    status, headers, _ = await asyncio.wait_for(http.post(body), 60)
                    if status != 429:
                        break
                    await asyncio.sleep(float(headers.get(b"retry-after", b"1") or 1))
        finally:
            http.close()

    async def run(self) -> PushStats:
        if self.a.prime:
            await asyncio.wait_for(self._prime(), 120)
        self.t0, cpu0 = time.monotonic(), _cpu_self()
        self.next_probe = self.t0 + self.a.probe_every / 2
        self.stats.started = time.time()
        workers = [asyncio.create_task(self._worker()) for _ in range(self.a.connections)]
        try:
            await asyncio.wait_for(asyncio.gather(*workers), self.a.seconds + 15)
        except asyncio.TimeoutError:
            self.stats.first_errors.append("hard timeout: requests still in flight were abandoned")
        self.stats.ended = time.time()
        self.stats.cpu_s = _cpu_self() - cpu0
        return self.stats


def push(a: argparse.Namespace) -> dict[str, Any]:
    base = load_base(a.samples, a.seed, a.base_rooms, a.sim_minutes, a.skip)
    streams = {s["stream"] for s in base}
    rooms = [s for s in streams if not s.startswith("svc:")] or list(streams)
    copies = max(1, -(-a.rooms // len(rooms)))
    work = build_workload(base, copies, a.shard, a.shards)
    stats = _run(_Pusher(a, work).run())
    out = vars(stats)
    rtt = sorted(out.pop("rtt_ms"))
    out["rtt_ms"] = {q: round(rtt[min(len(rtt) - 1, int(len(rtt) * f))], 2) if rtt else None
                     for q, f in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}
    out["probes"] = [p for p in stats.probes if "sent" in p]
    out["rooms"] = len(rooms) * work.copies
    out["streams"] = len(streams) * work.copies
    out["copies"] = copies
    out["base_rooms"] = len(rooms)
    return out


def _cpu_self() -> float:
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# -- watch --------------------------------------------------------------------------------------
async def watch(a: argparse.Namespace) -> dict[str, Any]:
    from websockets.asyncio.client import connect
    query = f"?token={a.token}" if a.token else ""
    url = f"ws://{a.host}:{a.port}/v1/alerts/stream{query}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    connected: set[int] = set()
    failed: dict[int, str] = {}
    messages = [0] * a.clients
    seen: dict[str, dict[int, float]] = {}       # probe stream -> client -> first receive time
    complete: set[str] = set()
    ts_of: dict[str, float] = {}
    ready = asyncio.Event()

    def settle() -> None:
        if len(connected) + len(failed) == a.clients and not ready.is_set():
            ready.set()
            print(f"ready {len(connected)} {len(failed)}", flush=True)

    def on_probe(i: int, t: float, d: dict[str, Any]) -> None:
        s = d.get("stream", "")
        if d.get("type") == "alert" and d.get("status") == "firing" and s.startswith(PROBE_PREFIX):
            got = seen.setdefault(s, {})
            got.setdefault(i, t)
            ts_of.setdefault(s, d.get("ts"))
            if len(got) >= len(connected) and s not in complete:
                complete.add(s)
                # receive times (first and last client) for live readers (soak.py), then the
                # completion line service.py waits for
                print(f"seen {s} {min(got.values()):.6f} {max(got.values()):.6f}\nprobe {s}",
                      flush=True)

    async def client(i: int) -> None:
        try:
            async with connect(url, open_timeout=15, max_size=None, ping_interval=None,
                               compression="deflate" if a.deflate else None) as ws:
                first = orjson.loads(await ws.recv())
                if first.get("type") != "snapshot":
                    raise ValueError(f"first message is not a snapshot: {str(first)[:200]}")
                connected.add(i)
                settle()
                async for msg in ws:
                    messages[i] += 1
                    if PROBE_PREFIX in msg:               # cheap test before any parsing
                        on_probe(i, time.time(), orjson.loads(msg))
                raise ConnectionError(f"closed by the service: {ws.close_code} {ws.close_reason}")
        except Exception as e:            # any failure counts; the others go on
            failed[i] = f"{type(e).__name__}: {e}"[:200]
            connected.discard(i)
            settle()

    tasks = [asyncio.create_task(client(i)) for i in range(a.clients)]
    try:
        await asyncio.wait_for(stop.wait(), a.seconds)
    except asyncio.TimeoutError:
        pass
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"clients": a.clients, "connected": len(connected), "failed": failed,
            "cpu_s": _cpu_self(),
            "messages": {"min": min(messages), "max": max(messages), "total": sum(messages)},
            "probes": {s: {"ts": ts_of.get(s), "first": min(got.values()),
                           "last": max(got.values()), "clients": len(got)}
                       for s, got in seen.items()}}


# -- command line -------------------------------------------------------------------------------
def _run(coro: Any) -> Any:
    try:
        import uvloop
        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("push", "watch"):
        s = sub.add_parser(name)
        s.add_argument("--host", default="127.0.0.1")
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--token", default=os.environ.get("STREAMWATCH_BENCH_TOKEN", ""))
        s.add_argument("--seconds", type=float, default=20.0, help="run (push) / deadline (watch)")
    ps, ws = sub.choices["push"], sub.choices["watch"]
    for flag, typ, default, what in (
            ("--rate", float, 100_000.0, "samples/s offered"),
            ("--batch", int, 1000, "samples per request"),
            ("--max-batches", int, 0, "stop after this many requests (0: by time only)"),
            ("--first-slot", int, 0, "start this many batches into the sequence"),
            ("--connections", int, 4, "keep-alive connections"),
            ("--retries", int, 5, "429 / connection retries per batch"),
            ("--samples", Path, None, "base samples NDJSON (default: simulate here)"),
            ("--rooms", int, 2000, "rooms in total (copies of the base rooms)"),
            ("--base-rooms", int, 20, "rooms simulated (without --samples)"),
            ("--sim-minutes", float, 20.0, "minutes simulated (without --samples)"),
            ("--skip", float, 120.0, "seconds of ramp-up skipped (without --samples)"),
            ("--seed", int, 4711, "simulator seed"),
            ("--shard", int, 0, "this process takes room copies c % shards == shard"),
            ("--shards", int, 1, "load processes in all"),
            ("--probe-every", float, 0.5, "seconds between latency probes (0: none)"),
            ("--tag", str, str(os.getpid()), "makes probe streams unique per run")):
        ps.add_argument(flag, type=typ, default=default, help=what)
    ps.add_argument("--prime", action="store_true", help="first send every series once")
    ps.add_argument("--prime-probes", type=int, default=0,
                    help="with --prime: also create this many probe streams of --tag")
    ws.add_argument("--clients", type=int, default=100)
    ws.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    a = p.parse_args(argv)
    if a.cmd == "push" and not (a.rate > 0 and a.batch > 0 and 0 <= a.shard < a.shards):
        p.error("need --rate > 0, --batch > 0 and 0 <= --shard < --shards")
    return a


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    out = push(a) if a.cmd == "push" else _run(watch(a))
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
