"""The pull-source faults of benchmarks/faults.py: an endpoint that hangs, answers garbage,
answers 5xx, or whose clock runs an hour ahead - each polled by a real `streamwatch serve` until
the whole session was served, then compared with a replay of what it served."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from faultcheck import (DB, Ctx, Row, events_lost, lost_text, processed, replay, settle, split,
                        stored_events)
from faultkit import HANG, Feed, FaultServer, Serve, config_dir, wait

__all__ = ["pull_hang", "pull_garbage", "pull_500", "clock_skew", "GARBAGE"]


# -- the endpoint -------------------------------------------------------------------------------
class Served:
    """A pull endpoint's good answers: the next chunk of the session each time, recorded."""

    def __init__(self, lines: list[bytes], size: int) -> None:
        self.chunks = split(lines, size)
        self.sent: list[bytes] = []
        self.k = 0
        self.lock = threading.Lock()

    def next(self, extra: tuple[bytes, ...] = ()) -> tuple[int, bytes]:
        with self.lock:
            chunk = self.chunks[self.k] if self.k < len(self.chunks) else []
            self.k += 1
            self.sent += chunk
        return 200, b"\n".join([*chunk, *extra])

    @property
    def done(self) -> bool:
        return self.k >= len(self.chunks)


def ahead(n: int, stream: str = "room-clock-ahead") -> list[bytes]:
    t = time.time() + 3600
    return [json.dumps({"stream": stream, "metric": "viewers", "ts": t + i,
                        "value": 100}).encode() for i in range(n)]


GARBAGE = {"html error page": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
           "truncated JSON array": b'[{"stream": "room-000", "metric": "viewers", "ts": 1',
           "binary bytes": bytes(range(256)) * 4,
           "JSON of another shape": b'{"error": "rate limited", "retry": true}',
           "non-sample JSON lines": b'{"a": 1}\n[1, 2, 3]\n"text"\n'}


def pull(ctx: Ctx, name: str, how: str, route: Callable[[int, Served], Any],
         extra_sources: str = "", routes: dict[str, Callable[[int], Any]] | None = None
         ) -> tuple[Row, Serve, Served]:
    """One service polling one scripted endpoint until the whole session was served
    (`extra_sources`/`routes`: more sources in the same service, `{url}` = the endpoint's)."""
    fs = FaultServer()
    served = Served(ctx.lines, 1000)
    fs.routes["/src"] = lambda n: route(n, served)
    fs.routes.update(routes or {})
    src = (f'[[sources]]\nname = "{name}"\nkind = "http_json"\nurl = "{fs.url}/src"\n'
           f'interval = "0.2s"\ntimeout = "1s"\njitter = 0\nmax_backoff = "1s"\n'
           + extra_sources.replace("{url}", fs.url))
    svc = Serve(ctx.workdir, name, ctx.data_dir(name), config_dir(ctx.workdir, name, src))
    feed = Feed(svc)
    seen: set[str] = set()

    def progress() -> bool:
        for s in svc.get("/v1/sources")["items"]:
            if s["name"] == name and s["state"] != "ok" and s.get("last_error"):
                seen.add(f'{s["state"]}: {s["last_error"]}'[:90])
        return served.done
    wait(progress, 90, f"{name}: the whole session served")
    key = f'streamwatch_source_samples_total{{source="{name}"}}'
    wait(lambda: svc.metrics().get(key, 0) >= len(served.sent), 15, f"{name}: taken")
    expected = replay(ctx.workdir, served.sent)
    db = ctx.data_dir(name) / DB
    settle(svc, db, len(expected))
    wait(lambda: len(feed.events) >= len(expected), 5, "the feed")
    stored = stored_events(db)
    acked = int(svc.metrics().get(key, 0))
    lost_events, dups, same = events_lost(expected, stored, feed.events)
    row = Row(name, how, len(served.sent), acked, processed(svc), len(expected), len(stored),
              len(feed.events), lost_text(len(served.sent) - acked, lost_events), dups,
              ("shown: " + " | ".join(sorted(seen)[:2]) if seen else "fault never shown")
              + ("" if same else "; event ids differ from replay")
              + (f"; feed ended: {feed.closed}" if feed.closed else ""))
    return row, svc, served


def pull_hang(ctx: Ctx) -> Row:
    def route(n: int, s: Served) -> Any:
        return (HANG, 3.0) if 2 <= n <= 4 else s.next()
    row, svc, _ = pull(ctx, "pull-hang", "polls 2-4 hang 3 s (timeout 1 s), then answer", route)
    svc.term()
    return row


def pull_garbage(ctx: Ctx) -> Row:
    bad = list(GARBAGE.values())
    ctx.bad_inputs |= set(GARBAGE) | {"valid chunk with garbage lines"}

    def route(n: int, s: Served) -> Any:
        if 2 <= n < 2 + len(bad):
            return 200, bad[n - 2]
        if n == 3 + len(bad):                       # good lines and garbage lines in one body
            return s.next([b"<garbage/>", b'{"stream": "room-000"}', b"NaN"])
        return s.next()
    row, svc, _ = pull(ctx, "pull-garbage", f"{len(bad)} garbage answers (HTML, truncated, "
                       "binary, other JSON) + 3 garbage lines inside a good body", route)
    svc.term()
    return row


def pull_500(ctx: Ctx) -> Row:
    def route(n: int, s: Served) -> Any:
        if 2 <= n <= 4:
            return 500, b"Internal Server Error"
        if n == 5:
            return 503, b"busy", {"Retry-After": "1"}
        if n == 7:
            return 502, b""
        return s.next()
    row, svc, _ = pull(ctx, "pull-500", "polls 2-4 answer 500, poll 5 503, poll 7 502", route)
    svc.term()
    return row


def clock_skew(ctx: Ctx) -> Row:
    ctx.bad_inputs |= {"sample 1 h ahead (pull)", "source entirely 1 h ahead"}
    per = 20

    def route(n: int, s: Served) -> Any:
        return s.next(ahead(per))
    extra = ('[[sources]]\nname = "all-ahead"\nkind = "http_json"\nurl = "{url}/ahead"\n'
             'interval = "0.2s"\ntimeout = "1s"\njitter = 0\nmax_backoff = "1s"\n')
    row, svc, served = pull(ctx, "clock-skew", f"each answer + {per} samples 1 h ahead; a 2nd "
                            "source sends only samples 1 h ahead", route, extra,
                            {"/ahead": lambda n: (200, b"\n".join(ahead(5, "room-ahead")))})
    src = {s["name"]: s for s in svc.get("/v1/sources")["items"]}
    m = svc.metrics()
    refused = int(m.get('streamwatch_samples_rejected_total{reason="absurd_timestamp"}', 0))
    mine, other = src.get("clock-skew", {}), src.get("all-ahead", {})
    offered = per * served.k
    row.note = (f"ahead samples refused: {mine.get('samples_rejected')} of {offered} offered "
                f"with good ones, {other.get('samples_rejected')} from all-ahead (metric "
                f"absurd_timestamp = {refused}); all-ahead source: {other.get('state')}, "
                f"\"{str(other.get('last_error'))[:75]}...\"")
    if other.get("state") == "ok" or mine.get("samples_rejected") != offered:
        row.note += " - WRONG"
        row.lost = f"{row.lost} (skewed samples accepted or not counted)"
    svc.term()
    return row
