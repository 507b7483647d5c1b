"""SqliteStore on real files: round trips, restart, versioning, and bad files (corrupt, foreign,
newer, locked) giving clear errors."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from streamwatch.store import DB_FILE, Counters, IncidentRecord, SqliteStore, StoreError, open_store


def _event(k: int, incident: str = "inc-00000001") -> dict[str, object]:
    return {"id": f"{k:012d}", "ts": 1_767_225_600.0 + k, "incident_id": incident,
            "status": "firing", "summary": f"event {k}"}


def _incident(iid: str, status: str = "open", key: str | None = "stream_outage"
              ) -> IncidentRecord:
    doc = {"id": iid, "status": status, "stream": "room-a", "timeline": [{"ts": 1.0,
                                                                          "action": "firing"}]}
    return IncidentRecord(iid, status, "room-a", key, doc,
                          {"last_event": _event(1, iid)} if status != "resolved" else None)


def test_round_trip_survives_reopen(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    store.append_events([_event(k) for k in range(1, 6)], [_incident("inc-00000001")],
                        Counters(5, 1), [("inc-00000001", {"ts": 9.0, "action": "ack",
                                                           "by": "ana"})])
    store.close()
    again = open_store(tmp_path / "data")
    assert (tmp_path / "data" / DB_FILE).is_file()
    assert [e["id"] for e in again.load_recent_events(3)] == [f"{k:012d}" for k in (3, 4, 5)]
    assert again.count_events() == 5 and again.counters() == Counters(5, 1)
    [inc] = again.load_open_incidents()
    assert (inc.id, inc.key, inc.doc["timeline"][0]["action"]) == ("inc-00000001",
                                                                   "stream_outage", "firing")
    assert inc.state == {"last_event": _event(1)}
    assert again.load_actions("inc-00000001") == [{"ts": 9.0, "action": "ack", "by": "ana",
                                                   "note": None}]
    again.close()


def test_wal_and_full_sync(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2        # FULL
    store.close()
    other = sqlite3.connect(tmp_path / DB_FILE)
    assert other.execute("PRAGMA user_version").fetchone()[0] == 1
    other.close()


def test_recent_incidents_keep_open_and_newest_resolved(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.append_events([], [_incident(f"inc-{k:08d}", "resolved") for k in (1, 2, 3)]
                        + [_incident("inc-00000004", "acked")])
    got = store.load_recent_incidents(resolved=1)
    assert [(r.id, r.status) for r in got] == [("inc-00000003", "resolved"),
                                               ("inc-00000004", "acked")]
    store.record_action("inc-00000004", {"ts": 5.0, "action": "note", "by": "bo", "note": "x"},
                        _incident("inc-00000004", "resolved"))
    assert store.load_open_incidents() == []
    store.close()


def test_rewrites_are_idempotent_and_counters_never_go_back(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.append_events([_event(1), _event(2)], counters=Counters(2, 1))
    store.append_events([_event(2), _event(3)], counters=Counters(1, 0))   # a retried batch
    assert store.count_events() == 3
    assert store.counters() == Counters(3, 1)     # max of the stored ids and the stored counters
    store.close()


def test_memory_store_keeps_nothing() -> None:
    a = open_store(None)
    a.append_events([_event(1)], counters=Counters(1, 1))
    assert a.count_events() == 1
    assert open_store(None).count_events() == 0


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / DB_FILE).write_bytes(b"this is not a database at all\n" * 200)
    with pytest.raises(StoreError, match=r"not a SQLite database or corrupt; move it away") as e:
        open_store(tmp_path)
    assert str(tmp_path / DB_FILE) in str(e.value)


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / DB_FILE)
    db.execute("CREATE TABLE customers (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not a streamwatch store"):
        open_store(tmp_path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_FILE)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="schema version 99 was written by a newer"):
        open_store(tmp_path)


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match="data dir"):
        open_store(tmp_path / "f")


def test_locked_store_fails_clearly_and_keeps_nothing_half_written(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    other = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")                      # another writer holds the lock
    with pytest.raises(StoreError, match="locked by another process"):
        store.append_events([_event(1)], [_incident("inc-00000001")], Counters(1, 1))
    other.execute("ROLLBACK")
    other.close()
    assert store.count_events() == 0 and store.load_open_incidents() == []
    store.append_events([_event(1)], [_incident("inc-00000001")], Counters(1, 1))
    assert store.count_events() == 1
    store.close()


def test_bad_rows_are_refused_whole(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with pytest.raises(KeyError):                          # an event without incident_id
        store.append_events([_event(1), {"id": "000000000002", "ts": 1.0}])
    assert store.count_events() == 0
    store.close()


def test_a_normal_store_still_fsyncs_what_people_did(tmp_path: Path) -> None:
    """With the journal on, the service opens the store NORMAL (events are recomputable from
    it); an ack, a silence or a webhook is committed FULL all the same, then NORMAL again."""
    store = SqliteStore(tmp_path / DB_FILE, synchronous="NORMAL")
    sql: list[str] = []
    store._db.set_trace_callback(sql.append)                   # noqa: SLF001
    full = "PRAGMA synchronous = FULL"

    def commits(fn: object, *args: object) -> list[str]:
        sql.clear()
        fn(*args)                                              # type: ignore[operator]
        return [q for q in sql if q.startswith("PRAGMA synchronous")]
    assert commits(store.append_events, [_event(1)], [_incident("inc-00000001")],
                   Counters(1, 1)) == []                       # derived: no fsync
    assert commits(store.append_events, [_event(2)], [], Counters(2, 1),
                   [("inc-00000001", {"ts": 9.0, "action": "ack", "by": "ana"})]
                   ) == [full, "PRAGMA synchronous = NORMAL"]
    assert commits(store.save_silence, {"id": "s1", "ends_at": 5.0}) == [
        full, "PRAGMA synchronous = NORMAL"]
    assert commits(store.save_webhook, {"id": "w1"})[0] == full
    assert commits(store.update_deliveries, [("k", "w1", _event(3))]) == []
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1     # NORMAL again
    store.sync_files()                                         # the WAL exists: fsync'ed
    assert (tmp_path / (DB_FILE + "-wal")).is_file()
    store.close()
    again = open_store(tmp_path)
    assert again.counters() == Counters(2, 1) and len(again.load_silences()) == 1
    again.close()


def test_sync_files_names_the_file_it_cannot_sync(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / DB_FILE, synchronous="NORMAL")
    store.append_events([_event(1)], [], Counters(1, 1))
    wal = tmp_path / (DB_FILE + "-wal")
    wal.unlink()                                               # replaced by a symlink loop
    wal.symlink_to(wal)
    with pytest.raises(StoreError, match=r"store .*streamwatch\.db.*: cannot"):
        store.sync_files()
    store.close()


def test_a_normal_store_checkpoints_its_wal_in_sync_files_not_in_commits(
        tmp_path: Path) -> None:
    """SQLite's automatic checkpoint would fsync inside a commit, on the event loop: a NORMAL
    store defers it to `sync_files` (a worker thread), which leaves the rows in the main file."""
    import shutil
    store = SqliteStore(tmp_path / DB_FILE, synchronous="NORMAL")
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000  # noqa: SLF001
    for k in range(1, 601):                                    # ~1,800 pages: past 1,000
        store.append_events([{**_event(k), "summary": "x" * 12_000}], [], Counters(k, 1))
    shutil.copy(tmp_path / DB_FILE, tmp_path / "before.db")    # the main file alone
    store.sync_files()
    shutil.copy(tmp_path / DB_FILE, tmp_path / "after.db")
    store.close()

    def rows(name: str) -> int:
        db = sqlite3.connect(tmp_path / name)
        try:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone():
                return 0                                       # not even the schema yet
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            db.close()
    assert rows("before.db") == 0                              # all still in the WAL
    assert rows("after.db") == 600
