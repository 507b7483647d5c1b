"""Checkpointer: the service's policy around the sample journal (store/journal.py).

- Every batch the consumer takes is written to the log before it is processed, and its pushers
  are answered once that write is fsync'ed. The two are apart on purpose: the write (into the
  page cache, on the consumer's thread) is what makes a kill -9 replayable, since everything
  detected is in the file; the fsync (a worker thread, one for all entries written meanwhile)
  is what makes an answered push survive a power loss too. Detection waits for the first only,
  so the disk's fsync outliers (100-460 ms on this VM) delay answers, never alerts.
  A manual resolve is logged too, in its place among the batches: it changes the pipeline's
  incident state and takes an event id, so a replay without it would drift.
- When a log write fails (disk full, I/O error) the journal is *broken*: continuity is lost, so
  nothing more is appended - pushes are answered 503 ("not stored; retry"), detection and the
  feed go on - until a checkpoint succeeds, which covers everything processed meanwhile and
  starts a fresh log. Checkpoints are attempted with back-off while broken.
- A checkpoint is taken every `interval` seconds or `max_bytes` of log, only when the store
  has nothing pending (else a crash could lose events the checkpoint says were emitted), and at
  a clean stop, so a normal restart replays nothing.
- The pipeline is pickled on the loop thread, between batches, where it is consistent (~30 ms
  at 2,000 rooms); writing and fsync'ing it runs in a worker thread while the consumer goes on
  (the soak showed a 179 ms push stall when the consumer waited for the write).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamwatch import __version__
from streamwatch.config.load import Config
from streamwatch.histogram import Histogram
from streamwatch.ingest.batch import Batch
from streamwatch.store.base import StoreError
from streamwatch.store.journal import JOURNAL_DIR, Journal, Recovery, Snapshot

__all__ = ["Checkpointer", "answer_when", "fingerprint"]

log = logging.getLogger("streamwatch.checkpoint")

_RETRY_MAX_S = 30.0


def fingerprint(config: Config) -> str:
    """What a checkpoint must have been written with to be reused: the same detectors."""
    text = repr((__version__, [r.model_dump_json() for r in config.rules],
                 config.pipeline_settings()))
    return f"{__version__}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


_SAME = object()


def answer_when(durable: asyncio.Future[bool], target: asyncio.Future[Any],
                result: Any = _SAME) -> None:
    """Answer `target` once `durable` (from `Checkpointer.durable`) is: with its result, or with
    `result` if given. A callback, not a task per waiting sender."""
    def copy(f: asyncio.Future[bool]) -> None:
        if not target.done():
            target.set_result(f.result() if result is _SAME else result)
    durable.add_done_callback(copy)


class Checkpointer:
    def __init__(self, data_dir: str | Path, config: Config, *, interval: float = 60.0,
                 max_bytes: int = 256 << 20, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.journal = Journal(Path(data_dir) / JOURNAL_DIR, fingerprint(config))
        self.interval = interval
        self.max_bytes = max_bytes
        self.clock = clock
        self.healthy = False          # appends allowed (a checkpoint has been written)
        self.error: str | None = None
        self.last_at = clock()
        self._retry_at = 0.0
        self._backoff = 0.0
        self.checkpoints = 0
        self.logged_samples = 0
        self.write_errors = 0
        self.replayed_samples = 0
        self.append_seconds = Histogram()  # an entry's write until its fsync is done
        self.write_seconds = Histogram()   # the write alone: detection waits for it
        self.checkpoint_seconds = Histogram()   # writing + fsync'ing a checkpoint
        self._writing: asyncio.Task[bool] | None = None
        self._waiters: list[tuple[int, float, asyncio.Future[bool]]] = []
        self._syncing: asyncio.Task[None] | None = None
        # fsyncs the store before a checkpoint says its events were emitted (sqlite.py NORMAL)
        self.before_checkpoint: Callable[[], None] | None = None

    def recover(self) -> Recovery:
        rec = self.journal.recover()
        if rec.stale:
            log.warning("journal checkpoint not used: detectors re-learn", extra={
                "reason": rec.stale, "journal": str(self.journal.dir)})
        return rec

    def log(self, batches: list[Batch]) -> int | None:
        """Write `batches` to the log (not yet durable: see `durable`); its sequence number,
        None when the journal is broken (or breaks now)."""
        seq = self._append(self.journal.append, batches)
        if seq is not None:
            self.logged_samples += sum(len(b) for b in batches)
        return seq

    def log_close(self, incident_id: str, ts: float, by: str) -> int | None:
        """Write a manual resolve in its place among the batches; as `log`."""
        return self._append(self.journal.append_close, incident_id, ts, by)

    def _append(self, write: Callable[..., int], *args: Any) -> int | None:
        if not self.healthy:
            return None
        t0 = time.perf_counter()
        try:
            seq = write(*args)
        except StoreError as exc:
            self._broke(exc)
            return None
        self.write_seconds.observe(time.perf_counter() - t0)
        return seq

    def durable(self, seq: int | None) -> asyncio.Future[bool]:
        """A future that gets True once entry `seq` is fsync'ed, False if it cannot be (the
        journal broke first; `seq` None: it was never written). One fsync in a worker thread
        covers every entry written before it starts (group commit)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if seq is None:
            fut.set_result(False)
        elif seq <= self.journal.synced_seq:
            fut.set_result(True)
        else:
            self._waiters.append((seq, time.perf_counter(), fut))
            if self._syncing is None or self._syncing.done():
                self._syncing = asyncio.create_task(self._sync(), name="streamwatch-journal-sync")
        return fut

    async def _sync(self) -> None:
        while self._waiters:
            try:
                synced = await asyncio.to_thread(self.journal.sync)
            except StoreError as exc:
                self._broke(exc)
                waiters, self._waiters = self._waiters, []
                for _, _, fut in waiters:
                    if not fut.done():
                        fut.set_result(False)
                return
            now = time.perf_counter()
            keep = []
            for seq, t0, fut in self._waiters:
                if seq > synced:
                    keep.append((seq, t0, fut))
                    continue
                self.append_seconds.observe(now - t0)
                if not fut.done():
                    fut.set_result(True)
            self._waiters = keep

    def due(self, store_clean: bool) -> bool:
        if not store_clean:
            return False
        if not self.healthy:
            return self.clock() >= self._retry_at
        return (self.journal.seq > self.journal.checkpoint_seq
                and (self.clock() - self.last_at >= self.interval
                     or self.journal.bytes_since_checkpoint >= self.max_bytes))

    async def checkpoint(self, state: Any, *, wait: bool = False) -> bool:
        """Freeze `state` (the pipeline, pickled now, on this thread) as the new checkpoint and
        write it in a worker thread. The consumer goes on meanwhile (appends go to a new
        segment) unless `wait`, or the journal is broken: healing needs the write done. True if
        written (or, not waiting, started)."""
        if self._writing is not None and not self._writing.done():
            return False                       # one at a time
        try:
            snap = self.journal.freeze(state)
        except Exception as exc:               # a state that cannot be pickled: say so, go on
            self._failed(exc)
            return False
        self.last_at = self.clock()
        if wait or not self.healthy:
            return await self._write(snap)
        self._writing = asyncio.create_task(self._write(snap), name="streamwatch-checkpoint")
        return True

    async def _write(self, snap: Snapshot) -> bool:
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(self._write_now, snap)
        except StoreError as exc:
            self._failed(exc)
            return False
        self.checkpoint_seconds.observe(time.perf_counter() - t0)
        if not self.healthy and self.checkpoints:
            log.info("journal writable again")
        self.healthy, self.error, self._backoff = True, None, 0.0
        self.checkpoints += 1
        return True

    async def settle(self) -> None:
        """Wait for the fsync of what was logged and for a checkpoint being written (before
        a clean stop: every sender gets its answer)."""
        for task in (self._syncing, self._writing):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)

    def _failed(self, exc: Exception) -> None:
        """A checkpoint not written: the previous one and the log still pair up, so a healthy
        journal stays healthy (retried at the next interval); a broken one stays broken."""
        self.write_errors += 1
        self._backoff = min(_RETRY_MAX_S, max(0.5, self._backoff * 2))
        self._retry_at = self.clock() + self._backoff
        self.error = str(exc)
        log.error("journal checkpoint failed", extra={"error": str(exc),
                                                      "retry_in_s": self._backoff,
                                                      "pushes_answer_503": not self.healthy})

    def _write_now(self, snap: Snapshot) -> None:
        if self.before_checkpoint is not None:
            self.before_checkpoint()
        self.journal.checkpoint(snap)

    def checkpoint_now(self, state: Any) -> bool:
        """Freeze and write, blocking: for a clean stop."""
        try:
            self._write_now(self.journal.freeze(state))
        except (StoreError, OSError) as exc:
            log.error("final checkpoint failed: the journal will be replayed at start",
                      extra={"error": str(exc)})
            return False
        return True

    def _broke(self, exc: StoreError) -> None:
        self.write_errors += 1
        self.healthy = False
        self.error = str(exc)
        self._retry_at = self.clock()
        log.error("journal write failed: samples are still detected but pushes answer 503 "
                  "until a checkpoint succeeds", extra={"error": str(exc)})

    def close(self) -> None:
        self.journal.close()
