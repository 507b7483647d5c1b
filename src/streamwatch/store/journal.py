"""The sample journal: what makes "202 Accepted" mean "will be detected, even after kill -9".

Detection state lives in memory (numpy arrays in the pipeline). Instead of writing it on every
batch, the service keeps the classic pair of a streaming system:

- a write-ahead log of every accepted batch, appended and fsync'ed *before* the batch is
  processed and before its sender is answered (`append`), and
- a checkpoint: the whole pipeline pickled, with the sequence number of the last batch it has
  seen (`checkpoint`), written every minute or so - after which the log before it is deleted.

After a crash, `recover` gives back the checkpoint and the batches logged after it; replaying
them through the pipeline (which is deterministic on event time) rebuilds exactly the state the
service had, and regenerates the alert events it had not yet stored (service.py skips those it
had). Without the log, samples queued or processed but not yet reflected in the store were lost at
kill -9 although their sender had been told they were accepted.

Format: segment files `seg-<first seq>.log` of records
`magic u32 | payload length u32 | crc32 u32 | seq u64 | payload` (little endian). A crash can
leave a torn record at the tail: recovery stops at the first record whose header, length or
CRC is wrong and truncates the file there (those bytes were never fsync'ed, so their sender was
never answered). The checkpoint is written to a temporary file, fsync'ed and renamed over the
old one, so there is always one whole checkpoint or none. It is a pickle: the data dir must be
trusted like config/ (it is ours alone to write). Its `fingerprint` (version + detector rules)
must match the running configuration, or it is not used (the detectors would not be the same).

Sample labels are not logged: detection never reads them.
"""
from __future__ import annotations

import logging
import os
import pickle
import struct
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from streamwatch.ingest.batch import Batch
from streamwatch.ingest.fastpath import NameView
from streamwatch.store.base import StoreError

__all__ = ["Journal", "Recovery", "Close", "Snapshot", "encode_batch", "decode_entry", "JOURNAL_DIR"]

log = logging.getLogger("streamwatch.journal")

JOURNAL_DIR = "journal"
_CHECKPOINT = "checkpoint.pickle"
_MAGIC = 0x5357_4A31            # "SWJ1"
_HEAD = struct.Struct("<IIIQ")
_PAYLOAD_MAX = 1 << 30


def _factorize(names: Any) -> tuple[list[str], np.ndarray]:
    """(distinct names, index of each sample's name): small to write, cheap to read back."""
    if isinstance(names, NameView):
        uniq, idx = np.unique(names._ids, return_inverse=True)  # noqa: SLF001 - same package
        table = names._names                                     # noqa: SLF001
        return [table[i] for i in uniq.tolist()], idx.astype(np.int32)
    seen: dict[str, int] = {}
    idx = np.fromiter((seen.setdefault(n, len(seen)) for n in names), np.int32, len(names))
    return list(seen), idx


def encode_batch(batch: Batch) -> bytes:
    streams, si = _factorize(batch.streams)
    metrics, mi = _factorize(batch.metrics)
    return msgspec.msgpack.encode([
        streams, si.tobytes(), metrics, mi.tobytes(),
        np.ascontiguousarray(batch.ts, np.float64).tobytes(),
        np.ascontiguousarray(batch.values, np.float64).tobytes()])


def decode_entry(payload: bytes) -> Batch | Close:
    doc = msgspec.msgpack.decode(payload)
    if doc[0] == "close":
        return Close(str(doc[1]), float(doc[2]), str(doc[3]))
    streams, si, metrics, mi, ts, values = doc
    s_idx = np.frombuffer(si, np.int32)
    m_idx = np.frombuffer(mi, np.int32)
    n = len(s_idx)
    return Batch([streams[i] for i in s_idx.tolist()], [metrics[i] for i in m_idx.tolist()],
                 np.frombuffer(ts, np.float64).copy(), np.frombuffer(values, np.float64).copy(),
                 [None] * n, np.arange(1, n + 1, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A frozen checkpoint: the pickled state and the last entry it includes."""
    blob: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class Close:
    """A manual resolve, logged in its place among the batches (it takes an event id)."""
    incident_id: str
    ts: float
    by: str


@dataclass
class Recovery:
    """What `recover` found: the newest checkpoint (None: none usable) and the entries after it."""
    state: Any = None
    seq: int = 0                               # last entry the checkpoint includes
    entries: list[tuple[int, Batch | Close]] = field(default_factory=list)
    torn_bytes: int = 0                        # bytes cut off a torn tail
    stale: str | None = None                   # why a checkpoint was found but not used


class Journal:
    """Append-only, fsync'ed log of batches plus periodic checkpoints, in `directory`.
    One writer (the service's consumer) calls it from one thread at a time."""

    def __init__(self, directory: str | Path, fingerprint: str, *, sync: bool = True) -> None:
        self.dir = Path(directory)
        self.fingerprint = fingerprint
        self.sync_enabled = sync               # False: no fsync at all (tests, throwaway dirs)
        self.seq = 0                           # last sequence number written
        self.synced_seq = 0                    # last one fsync'ed
        self.checkpoint_seq = 0
        self.bytes_since_checkpoint = 0
        self._fd: int | None = None            # the segment being written
        self._rotated: list[int] = []          # earlier segments' fds, not yet fsync'ed
        self._discard: list[int] = []          # fds a write failed on: to close
        self._fds_lock = threading.Lock()      # the writer and the syncer share the fd list
        self._sync_lock = threading.Lock()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"journal dir {self.dir}: cannot be created ({exc})") from exc

    # -- recovery ---------------------------------------------------------------------------
    def recover(self) -> Recovery:
        """Read the checkpoint and every whole record after it (truncating a torn tail)."""
        rec = Recovery()
        path = self.dir / _CHECKPOINT
        if path.exists():
            try:
                doc = pickle.loads(path.read_bytes())
                if doc.get("fingerprint") != self.fingerprint:
                    rec.stale = ("written by another version or detector configuration "
                                 f"({doc.get('fingerprint')!r} != {self.fingerprint!r})")
                else:
                    rec.state, rec.seq = doc["state"], int(doc["seq"])
            except Exception as exc:           # a checkpoint we cannot read is not one
                rec.stale = f"unreadable ({type(exc).__name__}: {exc})"
        for seg in self._segments():
            rec.torn_bytes += self._read_segment(seg, rec)
        self.seq = max([rec.seq] + [s for s, _ in rec.entries])
        if rec.stale is not None:             # the log is only meaningful on its checkpoint
            rec.entries = []
        self.checkpoint_seq = rec.seq
        return rec

    def _segments(self) -> list[Path]:
        return sorted(self.dir.glob("seg-*.log"), key=lambda p: int(p.stem[4:]))

    def _read_segment(self, seg: Path, rec: Recovery) -> int:
        data = seg.read_bytes()
        pos = 0
        while pos + _HEAD.size <= len(data):
            magic, length, crc, seq = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + length
            if magic != _MAGIC or length > _PAYLOAD_MAX or end > len(data):
                break
            payload = data[pos + _HEAD.size:end]
            if zlib.crc32(payload) != crc:
                break
            if seq > rec.seq:
                rec.entries.append((seq, decode_entry(payload)))
            pos = end
        torn = len(data) - pos
        if torn:
            log.warning("journal: torn tail cut off", extra={"segment": str(seg),
                                                             "bytes": torn})
            with open(seg, "r+b") as f:
                f.truncate(pos)
                os.fsync(f.fileno())
        return torn

    # -- writing ----------------------------------------------------------------------------
    # Appending is split in two so that detection never waits for the disk: `append` writes the
    # record (a copy into the page cache: it survives kill -9 from then on) on the consumer's
    # thread, and `sync` fsyncs in a worker thread, once for every record written meanwhile
    # (group commit); the sender is answered after the fsync. This VM's fsync has outliers of
    # 100-460 ms (benchmarks/soak.py); a write() stays under a millisecond even while an fsync
    # of the same file runs in another thread (measured: p999 0.2 ms, max 0.3 ms).
    def append(self, batches: list[Batch]) -> int:
        """Write `batches` as one record; its sequence number, durable once `sync` returns at
        least it. StoreError on failure, after which nothing more may be appended until a
        checkpoint succeeds."""
        batch = Batch.concat(batches) if len(batches) != 1 else batches[0]
        return self._write(encode_batch(batch))

    def append_close(self, incident_id: str, ts: float, by: str) -> int:
        return self._write(msgspec.msgpack.encode(["close", incident_id, ts, by]))

    def _write(self, payload: bytes) -> int:
        seq = self.seq + 1
        record = _HEAD.pack(_MAGIC, len(payload), zlib.crc32(payload), seq) + payload
        try:
            if self._fd is None:               # no whole record can be in a file of this name
                self._fd = os.open(self.dir / f"seg-{seq}.log",   # (a failed write's scraps)
                                   os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            view = memoryview(record)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            with self._fds_lock:               # a syncer may hold it: closed by `sync`, unsynced
                if self._fd is not None:
                    self._discard.append(self._fd)
                    self._fd = None
            raise StoreError(f"journal {self.dir}: cannot write ({exc})") from exc
        self.seq = seq
        self.bytes_since_checkpoint += len(record)
        return seq

    def sync(self) -> int:
        """Make every record written so far durable; the last sequence number that now is.
        Safe to call from another thread than the writer's (one sync at a time): segments
        rotated away by `freeze` meanwhile are fsync'ed here, then closed."""
        with self._sync_lock:
            with self._fds_lock:
                seq = self.seq
                rotated, self._rotated = self._rotated, []
                fds = rotated + ([self._fd] if self._fd is not None else [])
                rotated += self._discard       # a failed write's: the journal is broken, and
                self._discard = []             # a checkpoint, not an fsync, mends it
            try:
                if self.sync_enabled:
                    for fd in fds:
                        os.fsync(fd)
            except OSError as exc:
                raise StoreError(f"journal {self.dir}: cannot sync ({exc})") from exc
            finally:
                for fd in rotated:             # the writer has let go of these
                    _close_fd(fd)
            self.synced_seq = max(self.synced_seq, seq)
            return self.synced_seq

    def freeze(self, state: Any) -> Snapshot:
        """The checkpoint of `state` as of now (call on the thread that owns the state, when it
        has seen every entry logged so far): pickled in memory, which is quick (~30 ms at 2,000
        rooms); writing it is `checkpoint`'s, in another thread. Starts a new segment, so that
        `checkpoint` can delete the old ones while appends go on."""
        blob = pickle.dumps({"fingerprint": self.fingerprint, "seq": self.seq, "state": state},
                            protocol=pickle.HIGHEST_PROTOCOL)
        self._rotate()
        self.bytes_since_checkpoint = 0
        return Snapshot(blob, self.seq)

    def checkpoint(self, snap: Snapshot) -> None:
        """Write `snap` durably (tmp file, fsync, rename over the old checkpoint), then drop the
        segments it covers. On failure the previous checkpoint and every segment stay: still a
        consistent pair."""
        tmp = self.dir / (_CHECKPOINT + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(snap.blob)
                f.flush()
                if self.sync_enabled:
                    os.fsync(f.fileno())
            os.replace(tmp, self.dir / _CHECKPOINT)
            if self.sync_enabled:
                self._sync_dir()
        except OSError as exc:
            raise StoreError(f"journal checkpoint {self.dir}: cannot write ({exc})") from exc
        for seg in self._segments():           # entries all <= snap.seq: covered now
            if int(seg.stem[4:]) <= snap.seq:
                try:
                    seg.unlink()
                except OSError:
                    pass
        self.checkpoint_seq = snap.seq

    def close(self) -> None:
        with self._fds_lock:
            for fd in self._rotated + self._discard:
                _close_fd(fd)
            self._rotated, self._discard = [], []
        self._close_file()

    def _close_file(self) -> None:
        with self._fds_lock:
            if self._fd is not None:
                _close_fd(self._fd)
                self._fd = None

    def _rotate(self) -> None:
        """Start a new segment with the next write; the old one stays open until synced."""
        with self._fds_lock:
            if self._fd is not None:
                self._rotated.append(self._fd)
                self._fd = None

    def _sync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
