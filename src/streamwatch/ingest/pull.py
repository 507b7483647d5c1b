"""Pull sources: one asyncio task per configured source, each on its own clock and health.

A source polls (http_json, prometheus; see ingest/sources.py for what a poll turns into) or
replays the built-in simulator in real time, and hands its samples to `Service.submit` - the same
bounded queue as push. The rules that keep one bad source from hurting the rest:
- every poll has a hard deadline (`timeout`, on the whole request, not per socket read);
- a failure backs off exponentially (interval, 2x, 4x ... up to `max_backoff`, with jitter), so
  a dead endpoint is not hammered and does not pull its neighbours into lock-step;
- nothing polled is dropped: when the queue refuses a batch (full), the source keeps it, stops
  polling and retries with a short back-off - back-pressure reaches the source, not the data;
- silence is visible: `SourceState` is read by /metrics, and a source that has produced no sample
  for more than 3 intervals (failing or answering empty) turns `failing` and logs one structured
  warning for the episode, plus one info line when it recovers.
Time is injected (`clock`, `sleep`, `rng`) so tests run schedules and back-off without waiting.
"""
from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from streamwatch.config.schema import SourceSettings
from streamwatch.ingest.batch import Batch, ParseResult
from streamwatch.ingest.sources import (JsonMapping, Polled, PollError, PrometheusRates, fetch,
                                        parse_selector, prometheus_samples, room_stats_samples,
                                        samples_body, source_problems)

__all__ = ["SourceState", "start_sources", "SourceRunner", "Timing", "samples_to_batch",
           "SILENT_INTERVALS"]

log = logging.getLogger("streamwatch.ingest.pull")

SILENT_INTERVALS = 3          # no sample for this many intervals: failing, and one notice
_SUBMIT_RETRY = (0.05, 1.0)   # back-off while the queue refuses a batch: first, longest
_ACCEPT = {"http_json": "application/json, application/x-ndjson;q=0.9",
           "prometheus": "text/plain;version=0.0.4;q=1, */*;q=0.1"}


@dataclass
class SourceState:
    """Health of one pull source, read by /metrics and GET /v1/sources."""
    name: str
    kind: str
    state: str = "starting"            # starting | ok | failing | ended (simulator session over)
    last_success: float | None = None  # wall clock of the last good poll
    last_error: str | None = None
    consecutive_failures: int = 0
    polls: int = 0                     # attempts, good or not
    failures: int = 0                  # failed attempts, cumulative (a counter on /metrics)
    samples: int = 0                   # samples handed to the service
    lag_s: float | None = None         # wall now - newest sample ts seen (grows while silent)
    interval: float = 0.0
    samples_rejected: int = 0          # refused by validation (also in stats.samples_rejected)
    pending: int = 0                   # polled samples waiting for room in the queue
    last_sample_at: float | None = None  # wall clock of the last poll that brought samples
    notice: bool = False               # the silence warning of this episode has been logged


@dataclass(frozen=True)
class Timing:
    """Where the sources get time from; tests pass a fake clock and a sleep that advances it."""
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    rng: random.Random | None = None


def samples_to_batch(samples: list[dict[str, Any]]) -> Batch:
    """Trusted dicts (the simulator's) straight into a Batch, without a JSON round trip."""
    if not samples:
        return Batch.empty()
    return Batch([s["stream"] for s in samples], [s["metric"] for s in samples],
                 np.fromiter((s["ts"] for s in samples), np.float64, len(samples)),
                 np.fromiter((s["value"] for s in samples), np.float64, len(samples)),
                 [s.get("labels") for s in samples], np.arange(len(samples), dtype=np.int64))


class SourceRunner:
    """The loop of one source: poll, hand over, update health, sleep - until cancelled."""

    def __init__(self, service: Any, settings: SourceSettings, state: SourceState,
                 timing: Timing, client: httpx.AsyncClient | None) -> None:
        self.service, self.s, self.state, self.client = service, settings, state, client
        self.clock, self.sleep = timing.clock, timing.sleep
        self.rng = timing.rng or random.Random()
        self.started = self.clock()
        self.newest_ts = -math.inf
        self.max_bytes: int = service.config.service.server.max_body_bytes
        self.rates = PrometheusRates()
        self.selectors = ([(parse_selector(k), v) for k, v in settings.mapping.items()]
                          if settings.kind == "prometheus" else [])
        self.mapping = (JsonMapping.compile(settings.mapping)
                        if settings.kind == "http_json" and settings.mapping else None)
        self._pending: Batch | None = None

    # -- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            if self.s.kind == "simulator":
                await self._run_simulator()
            else:
                await self._run_poller()
        except asyncio.CancelledError:
            self._last_chance()
            raise
        except Exception as exc:               # a bug must show, not silently end the source
            log.exception("pull source crashed", extra={"source": self.s.name})
            self.state.state, self.state.last_error = "failing", f"crashed: {exc!r}"

    async def _run_poller(self) -> None:
        await self.sleep(self.rng.uniform(0.0, self.s.jitter * self.s.interval))  # spread starts
        while True:
            t0 = self.clock()
            try:
                async with asyncio.timeout(self.s.timeout):
                    polled = await self.poll(t0)
            except Exception as exc:           # whatever a poll raises fails that poll only
                if not isinstance(exc, (PollError, TimeoutError, httpx.HTTPError)):
                    log.exception("pull source poll raised", extra={"source": self.s.name})
                self._failed(self.clock(), _describe(exc, self.s.timeout),
                             getattr(exc, "polled", None))
                delay = self._backoff()
            else:
                self._succeeded(self.clock(), polled)
                await self._hand_over(polled.batch)
                delay = max(0.0, t0 + self._jittered(self.s.interval) - self.clock())
            self._watch()
            await self.sleep(delay)

    async def poll(self, now: float) -> Polled:
        """One request, turned into validated samples (ingest/sources.py)."""
        assert self.client is not None
        body = await fetch(self.client, self.s.url, timeout=self.s.timeout,
                           max_bytes=self.max_bytes, accept=_ACCEPT[self.s.kind])
        if self.s.kind == "prometheus":
            return prometheus_samples(self.service, body, self.selectors, self.s.stream_label,
                                      self.s.stream, self.rates, now)
        if self.mapping is not None:
            return room_stats_samples(self.service, body, self.mapping, self.s.stream, now)
        return samples_body(self.service, body, now)

    async def _run_simulator(self) -> None:
        """Event time follows wall time: tick k goes out at start + k/speed (speed 1 = live)."""
        from streamwatch.sim import Simulator
        wall0 = self.clock()
        start_ts = float(math.floor(wall0))
        sim = await asyncio.to_thread(Simulator, self.s.seed, self.s.rooms, self.s.minutes,
                                      start_ts)
        log.info("simulator source started", extra={"source": self.s.name, "rooms": self.s.rooms,
                                                    "minutes": self.s.minutes,
                                                    "speed": self.s.speed, "start_ts": start_ts})
        for tick_ts, samples in sim.iter_ticks(tick_s=1.0):
            due = wall0 + (tick_ts - start_ts) / self.s.speed
            wait = due - self.clock()
            if wait > 0:
                await self.sleep(wait)
            now = self.clock()
            polled = self._admit(samples_to_batch(samples))
            self._succeeded(now, polled)
            await self._hand_over(polled.batch)
            self._watch()
        self.state.state = "ended"
        log.info("simulator session ended", extra={"source": self.s.name,
                                                   "samples": self.state.samples})

    def _admit(self, batch: Batch) -> Polled:
        """The simulator's trusted dicts skip validation, not the stream limit: their names are
        interned here, as a parse would (ingest/newnames.py)."""
        res = self.service.parser.commit(ParseResult(batch, []), None, self.service.limits,
                                         "index")
        return Polled(res.batch, Counter(r.reason.value for r in res.rejections))

    # -- hand-over --------------------------------------------------------------------------
    async def _hand_over(self, batch: Batch) -> None:
        """Submit, or keep the batch and retry while the queue is full: nothing is dropped."""
        if self.service.submit(batch):
            return
        self._pending, self.state.pending = batch, len(batch)
        delay = _SUBMIT_RETRY[0]
        log.info("queue full, pull source holds its batch",
                 extra={"source": self.s.name, "samples": len(batch)})
        while True:
            await self.sleep(delay)
            if self.service.submit(batch):
                break
            delay = min(delay * 2, _SUBMIT_RETRY[1])
        self._pending, self.state.pending = None, 0

    def _last_chance(self) -> None:
        """On shutdown, a held batch gets one more try (the service drains after stopping us)."""
        if self._pending is not None and not self.service.submit(self._pending):
            log.warning("pull source stopped with a batch the queue refused",
                        extra={"source": self.s.name, "samples": len(self._pending)})
        self._pending = None

    # -- health -----------------------------------------------------------------------------
    def _succeeded(self, now: float, polled: Polled) -> None:
        st, n = self.state, len(polled.batch)
        st.polls += 1
        st.last_success = now
        st.consecutive_failures = 0
        st.samples += n
        self._reject(polled)
        if n:
            self.newest_ts = max(self.newest_ts, float(np.max(polled.batch.ts)))
            st.last_sample_at = now
            if st.notice:
                log.info("pull source recovered", extra={"source": self.s.name,
                                                         "kind": self.s.kind})
            st.notice = False
        if not st.notice:                      # (a silence episode ends with a sample only)
            st.state, st.last_error = "ok", None
        if math.isfinite(self.newest_ts):
            st.lag_s = now - self.newest_ts

    def _failed(self, now: float, why: str, polled: Polled | None) -> None:
        st = self.state
        st.polls += 1
        st.failures += 1
        st.consecutive_failures += 1
        st.last_error = why
        st.state = "failing"
        if polled is not None:
            self._reject(polled)
        if math.isfinite(self.newest_ts):
            st.lag_s = now - self.newest_ts
        log.debug("pull source poll failed", extra={"source": self.s.name, "error": why})

    def _reject(self, polled: Polled) -> None:
        if polled.rejected:
            self.service.stats.samples_rejected.update(polled.rejected)
            self.state.samples_rejected += sum(polled.rejected.values())

    def _watch(self) -> None:
        """More than SILENT_INTERVALS without a sample: failing, and one warning per episode."""
        st = self.state
        quiet = self.clock() - (st.last_sample_at if st.last_sample_at is not None
                                else self.started)
        if quiet <= SILENT_INTERVALS * self.s.interval:
            return
        st.state = "failing"
        if st.last_error is None or st.last_error.startswith("silent"):
            st.last_error = f"silent: no sample for {quiet:.0f}s"
        if not st.notice:
            st.notice = True
            log.warning("pull source silent", extra={
                "source": self.s.name, "kind": self.s.kind, "silent_s": round(quiet, 1),
                "consecutive_failures": st.consecutive_failures, "error": st.last_error})

    # -- timing -----------------------------------------------------------------------------
    def _jittered(self, base: float) -> float:
        return base * (1.0 + self.s.jitter * self.rng.uniform(-1.0, 1.0))

    def _backoff(self) -> float:
        n = self.state.consecutive_failures
        base = min(self.s.max_backoff, self.s.interval * 2.0 ** min(n - 1, 30))
        return min(self.s.max_backoff, self._jittered(base))


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"timeout after {timeout:g}s"
    if isinstance(exc, PollError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


async def _close_on_stop(client: httpx.AsyncClient) -> None:
    """Owns the shared client: waits for the service's stop (cancel), then closes it."""
    try:
        await asyncio.Event().wait()
    finally:
        await client.aclose()


def start_sources(service: Any, sources: list[SourceSettings], *,
                  client: httpx.AsyncClient | None = None, clock: Callable[[], float] | None = None,
                  sleep: Callable[[float], Awaitable[Any]] | None = None,
                  rng: random.Random | None = None) -> list[SourceState]:
    """Start one task per source (`service.spawn`), set and return `service.sources`.

    One `httpx.AsyncClient` is shared by every HTTP source: `client` when given (the caller
    closes it), else one made here and closed when the service stops. A source whose settings
    cannot work (config/load.py refuses those at start-up; this catches settings built in code)
    is listed as failing with the reason, and not started."""
    timing = Timing(clock or service.clock, sleep or asyncio.sleep, rng)
    states: list[SourceState] = []
    if client is None and any(s.kind != "simulator" for s in sources):
        from streamwatch import __version__
        client = httpx.AsyncClient(follow_redirects=True,
                                   headers={"User-Agent": f"streamwatch/{__version__}"})
        service.spawn(_close_on_stop(client), "streamwatch-pull-client")
    for s in sources:
        state = SourceState(s.name, s.kind, interval=s.interval)
        states.append(state)
        problems = source_problems(s)
        if problems:
            state.state = "failing"
            state.last_error = "; ".join(f"{f} = {v!r}: {why}" for f, v, why in problems)
            log.error("pull source not started: bad settings",
                      extra={"source": s.name, "error": state.last_error})
            continue
        runner = SourceRunner(service, s, state, timing, client)
        service.spawn(runner.run(), f"streamwatch-source-{s.name}")
        log.info("pull source started", extra={"source": s.name, "kind": s.kind,
                                               "interval": s.interval})
    service.sources = states
    return states
