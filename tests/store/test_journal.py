"""The sample journal (store/journal.py) and the service's recovery from it (checkpoint.py).

The file format on its own (round trip, torn tail, bad CRC, stale checkpoint, a full disk) and
a crash "between the answer and the detection", made deterministic in-process: the service logs
batches as its consumer does before processing them, is then abandoned (no stop, no flush), and
a new service on the same data dir must end with exactly the alert events of an uninterrupted
run - same ids, same event times."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from streamwatch.checkpoint import Checkpointer
from streamwatch.ingest.batch import Batch
from streamwatch.pipeline import Pipeline
from streamwatch.service import Service
from streamwatch.store import StoreError
from streamwatch.store.journal import JOURNAL_DIR, Close, Journal, decode_entry, encode_batch
from tests.api.conftest import make_config
from tests.store.helpers import outage_chunks

NOW = 1767225600.0 + 3600


def _batch(n: int, stream: str = "room-a") -> Batch:
    ts = NOW - 600 + np.arange(n, dtype=np.float64)
    return Batch([stream, "svc:pay"] * (n // 2) + [stream] * (n % 2), ["viewers"] * n, ts,
                 np.linspace(0, 1, n), [None] * n, np.arange(1, n + 1))


def _same(a: Batch, b: Batch) -> None:
    assert list(a.streams) == list(b.streams) and list(a.metrics) == list(b.metrics)
    assert np.array_equal(a.ts, b.ts) and np.array_equal(a.values, b.values)


def test_a_batch_round_trips_exactly() -> None:
    b = _batch(7)
    b.values[3] = 0.1 + 0.2                   # not a short decimal: bits must survive
    _same(decode_entry(encode_batch(b)), b)   # type: ignore[arg-type]


def test_parsed_batches_round_trip_through_their_name_ids() -> None:
    p = Pipeline(make_config().rules, make_config().pipeline_settings())
    body = b"\n".join(b'{"stream":"r%d","metric":"m%d","ts":%.1f,"value":%d}'
                      % (i % 3, i % 2, NOW + i, i) for i in range(10))
    parsed = p.parser.parse_ndjson(body, now=NOW + 100).batch
    assert parsed.sids is not None                     # the fast path's NameView
    _same(decode_entry(encode_batch(parsed)), parsed)  # type: ignore[arg-type]


def test_recover_reads_entries_after_the_checkpoint_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    j = Journal(tmp_path, "fp")
    j.recover()
    j.append([_batch(4)])
    j.checkpoint(j.freeze({"state": "at 1"}))
    j.append([_batch(2), _batch(3)])                  # two batches, one record
    j.append_close("inc-00000007", NOW, "alice")
    j.close()
    seg = next(tmp_path.glob("seg-*.log"))
    whole = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(b"\x31\x4a\x57\x53" + b"\xff" * 9)       # a record cut short by the crash
    rec = Journal(tmp_path, "fp").recover()
    assert rec.state == {"state": "at 1"} and rec.seq == 1
    assert [s for s, _ in rec.entries] == [2, 3]
    assert len(rec.entries[0][1]) == 5                  # type: ignore[arg-type]
    assert rec.entries[1][1] == Close("inc-00000007", NOW, "alice")
    assert rec.torn_bytes == 13 and seg.stat().st_size == whole
    j2 = Journal(tmp_path, "fp")
    j2.recover()
    assert j2.append([_batch(1)]) == 4                  # numbering continues
    j2.close()


def test_a_corrupt_record_ends_the_log_there(tmp_path: Path) -> None:
    j = Journal(tmp_path, "fp")
    j.recover()
    j.checkpoint(j.freeze("s"))
    j.append([_batch(3)])
    j.append([_batch(3)])
    j.close()
    seg = next(tmp_path.glob("seg-*.log"))
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF                                    # last payload byte flipped: CRC fails
    seg.write_bytes(bytes(data))
    rec = Journal(tmp_path, "fp").recover()
    assert [s for s, _ in rec.entries] == [1] and rec.torn_bytes > 0


def test_a_checkpoint_of_other_detectors_is_not_used(tmp_path: Path) -> None:
    j = Journal(tmp_path, "rules-v1")
    j.recover()
    j.checkpoint(j.freeze("old state"))
    j.append([_batch(3)])
    j.close()
    rec = Journal(tmp_path, "rules-v2").recover()
    assert rec.state is None and rec.entries == [] and "rules-v1" in (rec.stale or "")


def test_a_checkpoint_drops_the_log_it_covers(tmp_path: Path) -> None:
    j = Journal(tmp_path, "fp")
    j.recover()
    for _ in range(3):
        j.append([_batch(2)])
    assert len(list(tmp_path.glob("seg-*.log"))) == 1
    j.checkpoint(j.freeze("s"))
    assert list(tmp_path.glob("seg-*.log")) == [] and j.bytes_since_checkpoint == 0
    j.close()
    assert Journal(tmp_path, "fp").recover().seq == 3


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_a_clear_error_and_nothing_is_appended_after_it(tmp_path: Path) -> None:
    j = Journal(tmp_path, "fp")
    j.recover()
    j.checkpoint(j.freeze("s"))
    (tmp_path / "seg-1.log").symlink_to("/dev/full")     # every write: ENOSPC, for real
    with pytest.raises(StoreError, match="journal .*cannot write.*No space left"):
        j.append([_batch(2)])
    assert j.seq == 0                                    # the failed record took no number


async def test_journal_failure_answers_not_durable_and_keeps_detecting(tmp_path: Path) -> None:
    svc = Service(make_config(), data_dir=tmp_path)
    await svc.start()
    try:
        assert svc.checkpointer is not None and svc.checkpointer.healthy
        jdir = tmp_path / JOURNAL_DIR
        seg = jdir / f"seg-{svc.checkpointer.journal.seq + 1}.log"
        seg.symlink_to("/dev/full")                              # the disk is full: the log
        (jdir / "checkpoint.pickle.tmp").symlink_to("/dev/full")  # and the checkpoint fail
        chunks = iter(outage_chunks(chunk=500))

        def batch() -> Batch:
            return svc.parser.parse_ndjson(next(chunks), now=NOW + 10**6).batch
        assert await svc.submit_durable(batch()) is False        # the pusher is told: 503
        assert not svc.checkpointer.healthy and "No space" in (svc.checkpointer.error or "")
        assert svc.queued == 0 and len(svc.pipeline.table.rows) > 0   # detected all the same
        await svc.drain()                                        # (a checkpoint is tried)
        assert await svc.submit_durable(batch()) is False        # still full: still 503
        await svc.drain()
        assert svc.checkpointer.write_errors >= 2
        seg.unlink()                                             # space again
        (jdir / "checkpoint.pickle.tmp").unlink()
        svc.checkpointer._retry_at = 0.0                         # noqa: SLF001 - skip the wait
        assert await svc.submit_durable(batch()) is False        # the checkpoint follows it
        await svc.drain()
        assert svc.checkpointer.healthy                          # ... and heals the journal
        assert await svc.submit_durable(batch()) is True
        rows = len(svc.pipeline.table.rows)
        assert rows > 0 and svc.stats.samples_accepted == sum(
            1 for c in outage_chunks(chunk=500)[:4] for _ in c.splitlines())
    finally:
        await svc.stop()


async def _run_all(svc: Service, bodies: list[bytes]) -> None:
    for body in bodies:
        assert await svc.submit_durable(svc.parser.parse_ndjson(body, now=NOW + 10**6).batch)


def _events(svc: Service) -> list[tuple]:
    return [(e.data["id"], e.data["ts"], e.data["stream"], e.data["status"], e.data["level"],
             e.data["incident_id"], e.data["incident_type"]) for e in svc.log.since(None)]


async def test_samples_journaled_but_never_processed_are_detected_after_a_crash(
        tmp_path: Path) -> None:
    chunks = outage_chunks(minutes=26.0, earlier=True)
    truth = Service(make_config())                  # memory only, uninterrupted
    await truth.start()
    await _run_all(truth, chunks)
    await truth.stop()
    want = _events(truth)
    assert [e[3] for e in want] == ["firing", "resolved", "firing"]

    first = Service(make_config(), data_dir=tmp_path / "d")
    await first.start()
    half = len(chunks) // 2
    await _run_all(first, chunks[:half])
    await first.drain()
    assert first.checkpointer is not None
    assert await first.checkpointer.checkpoint(first.pipeline, wait=True)
    for body in chunks[half:]:                     # what the consumer does before detecting:
        first.checkpointer.log([first.parser.parse_ndjson(body, now=NOW + 10**6).batch])
    stored_before = [e for e in _events(first)]    # then the process dies: no stop, no flush
    first._consumer.cancel()                       # type: ignore[union-attr]  # noqa: SLF001
    first.store.close()                            # type: ignore[union-attr]
    first.checkpointer.close()

    second = Service(make_config(), data_dir=tmp_path / "d")
    await second.start()
    try:
        got = _events(second)
        assert got[:len(stored_before)] == stored_before
        assert got == want
    finally:
        await second.stop()


async def test_detection_does_not_wait_for_the_fsync_but_the_answer_does(
        tmp_path: Path) -> None:
    """A slow disk (an fsync held until released) delays the pusher's answer, never the
    alert; one fsync answers every push written before it (group commit)."""
    import asyncio
    import threading

    svc = Service(make_config(), data_dir=tmp_path)
    await svc.start()
    assert svc.checkpointer is not None
    journal = svc.checkpointer.journal
    release, calls = threading.Event(), []
    real_sync = journal.sync

    def slow_sync() -> int:
        calls.append(journal.seq)
        release.wait(10)
        return real_sync()
    journal.sync = slow_sync                                   # type: ignore[method-assign]
    try:
        chunks = outage_chunks(minutes=26.0, earlier=True)
        pushes = [asyncio.ensure_future(svc.submit_durable(
            svc.parser.parse_ndjson(c, now=NOW + 10**6).batch)) for c in chunks]
        await asyncio.sleep(0)                                 # (each push is queued)
        await svc.drain()                                      # everything detected ...
        assert [e.data["status"] for e in svc.log.since(None)][:1] == ["firing"]
        assert not any(p.done() for p in pushes)               # ... nobody answered yet
        assert journal.synced_seq < journal.seq
        release.set()
        assert await asyncio.gather(*pushes) == [True] * len(pushes)
        assert journal.synced_seq == journal.seq
        assert len(calls) < len(pushes)                        # fsyncs shared by pushes
    finally:
        release.set()
        await svc.stop()


async def test_a_failed_fsync_answers_not_durable_and_breaks_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import streamwatch.store.journal as journal_mod
    svc = Service(make_config(), data_dir=tmp_path)
    await svc.start()
    try:
        def eio(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")
        monkeypatch.setattr(journal_mod.os, "fsync", eio)      # the disk fails under us
        chunk = outage_chunks(chunk=500)[0]
        batch = svc.parser.parse_ndjson(chunk, now=NOW + 10**6).batch
        assert await svc.submit_durable(batch) is False         # told: not stored (503)
        assert svc.checkpointer is not None and not svc.checkpointer.healthy
        assert "cannot sync" in (svc.checkpointer.error or "")
        assert len(svc.pipeline.table.rows) > 0                 # detected all the same
        monkeypatch.undo()                                      # the disk is back
        svc.checkpointer._retry_at = 0.0                        # noqa: SLF001 - skip the wait
        await svc.drain()
        assert svc.checkpointer.healthy                         # a checkpoint mended it
        batch = svc.parser.parse_ndjson(outage_chunks(chunk=500)[1], now=NOW + 10**6).batch
        assert await svc.submit_durable(batch) is True
    finally:
        await svc.stop()
