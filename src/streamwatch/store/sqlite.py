"""SqliteStore: the embedded default store - one SQLite file in WAL mode under the data dir.

Why these settings:
- WAL: readers (a backup, `sqlite3` at the shell, a future review report) never block the writer.
- `synchronous=FULL` by default: every commit is fsync'ed before it returns. CONTRACTS §5 says an
  ack is "stored durably before the 2xx answer"; with NORMAL a WAL commit survives a crash of
  the process (kill -9) but not of the machine (power loss).
- With the sample journal on (service/durability.py), the service opens the store NORMAL: alert
  events, incident records and delivery state are all recomputed from the journal after a crash
  (replay republishes every event past the store's counter), so fsync'ing each of those commits
  on the event loop bought nothing but stalls - this VM's fsync has 100-460 ms outliers. What a
  person did (ack, resolve, note, silence, webhook) is still committed FULL (`_tx(durable=True)`),
  and `sync_files` makes the rest power-safe before each journal checkpoint relies on it. It
  also checkpoints the WAL, in the journal checkpoint's worker thread: SQLite's automatic
  checkpoint (every 1,000 pages) runs inside a commit, on the loop, with two fsyncs - 5 ms
  typical, more at the disk's outliers (the likely cause of one 718 ms stall in a soak) - so a
  NORMAL store leaves it as a backstop only.
- One writer: a single connection, used from the service's event-loop thread only (sqlite3's
  own thread check enforces it). A short busy timeout, so a lock held by another process costs
  the loop at most that long; the service keeps what it could not write and retries.
- Schema versioned with `PRAGMA user_version`; a newer file is refused, not rewritten.
"""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import orjson

from streamwatch.store.base import Counters, IncidentRecord, StoreError

__all__ = ["SqliteStore", "open_store", "DB_FILE", "SCHEMA_VERSION"]

DB_FILE = "streamwatch.db"
_WAL_BACKSTOP_PAGES = 10_000   # NORMAL stores: SQLite's own checkpoint only past this WAL size
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE events (
    id TEXT PRIMARY KEY,            -- zero-padded: string order = emission order
    incident_id TEXT NOT NULL,
    ts REAL NOT NULL,               -- event time
    doc BLOB NOT NULL               -- the alert event (CONTRACTS §3) as JSON
) WITHOUT ROWID;
CREATE INDEX events_incident ON events (incident_id);
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,           -- open | acked | resolved
    stream TEXT NOT NULL,
    key TEXT,                       -- the manager's (stream, key) identity
    doc BLOB NOT NULL,              -- the incident as the API shows it, with its timeline
    state BLOB                      -- the manager's state while open (last event), else NULL
) WITHOUT ROWID;
CREATE INDEX incidents_status ON incidents (status);
CREATE TABLE actions (
    seq INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL,
    ts REAL NOT NULL,               -- wall clock of the action
    action TEXT NOT NULL,           -- ack | resolve | note
    by TEXT,
    note TEXT
);
CREATE INDEX actions_incident ON actions (incident_id);
"""
_TABLES = {"meta", "events", "incidents", "actions"}
# Added without a schema version bump: IF NOT EXISTS makes them appear in older files as they
# are opened, and an older streamwatch ignores them.
_WEBHOOK_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    doc BLOB NOT NULL               -- the subscription, with its signing secret
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    key TEXT PRIMARY KEY,           -- "{webhook id}:{event id}": string order = event order
    webhook_id TEXT NOT NULL,
    dead INTEGER NOT NULL,          -- 0 pending, 1 dead letter
    doc BLOB NOT NULL               -- pending: the alert event; dead: the dead letter
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    ends_at REAL NOT NULL,          -- wall clock; expiring early rewrites it
    doc BLOB NOT NULL               -- the silence (incidents/silence.py) as JSON
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS escalations (
    incident_id TEXT PRIMARY KEY,
    doc BLOB NOT NULL               -- when it was first alerted, the steps already notified
) WITHOUT ROWID;
"""


def _hint(path: str, exc: BaseException) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        why = "locked by another process (another streamwatch on the same data dir?)"
    elif "not a database" in text or "malformed" in text or "corrupt" in text:
        why = ("not a SQLite database or corrupt; move it away to start afresh, or restore "
               "a backup")
    elif "full" in text:
        why = "full (no space left on the disk, or the file's page limit reached)"
    elif "readonly" in text or "unable to open" in text or "disk" in text:
        why = "cannot be written (permissions, full or read-only disk?)"
    else:
        why = "cannot be used"
    return f"store {path}: {why} ({type(exc).__name__}: {text})"


class SqliteStore:
    """See the module notes. `path` ":memory:" gives a private in-memory store (tests, demo)."""

    def __init__(self, path: str | Path, *, synchronous: Literal["FULL", "NORMAL"] = "FULL",
                 busy_timeout: float = 0.2, max_pages: int | None = None) -> None:
        """`max_pages`: test-facing, see `limit_pages`."""
        self.path = str(path)
        self.synchronous = synchronous
        try:
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(_hint(self.path, exc)) from exc
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if self.path != ":memory:" and str(mode).lower() != "wal":
                raise StoreError(f"store {self.path}: could not switch to WAL mode "
                                 f"(journal_mode is {mode!r})")
            self._db.execute(f"PRAGMA synchronous = {synchronous}")
            if synchronous == "NORMAL":        # the WAL is checkpointed by `sync_files`, off
                self._db.execute(               # the loop; this is only a backstop (~40 MB)
                    f"PRAGMA wal_autocheckpoint = {_WAL_BACKSTOP_PAGES}")
            self._migrate()
            self._pages_default = int(self._db.execute("PRAGMA max_page_count").fetchone()[0])
            if max_pages is not None:
                self.limit_pages(max_pages)
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(_hint(self.path, exc)) from exc
        except StoreError:
            self._db.close()
            raise

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > SCHEMA_VERSION:
            raise StoreError(f"store {self.path}: schema version {version} was written by a "
                             f"newer streamwatch (this one knows {SCHEMA_VERSION})")
        if version == 0:
            if tables:
                raise StoreError(f"store {self.path}: a SQLite file that is not a streamwatch "
                                 f"store (tables {sorted(tables)[:5]})")
            try:
                self._db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} "
                                       f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        elif not _TABLES <= tables:
            raise StoreError(f"store {self.path}: tables missing: {sorted(_TABLES - tables)}")
        self._db.executescript(_WEBHOOK_SCHEMA)

    @contextmanager
    def _tx(self, durable: bool = False) -> Iterator[None]:
        """One transaction; any SQLite error becomes a StoreError naming the file. `durable`:
        fsync'ed at commit even when the store runs with synchronous=NORMAL (what a person did
        - an ack, a silence, a webhook - cannot be recomputed from the sample journal)."""
        upgrade = durable and self.synchronous != "FULL" and not self._db.in_transaction
        try:
            if upgrade:
                self._db.execute("PRAGMA synchronous = FULL")
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(_hint(self.path, exc)) from exc
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        finally:
            if upgrade:
                self._db.execute(f"PRAGMA synchronous = {self.synchronous}")

    def sync_files(self) -> None:
        """Checkpoint the WAL into the database and fsync both: what NORMAL commits wrote
        becomes power-safe. Uses a connection of its own, so any thread may call it
        (checkpoint.py does, in a worker thread, before a checkpoint that counts on the events
        stored so far): the checkpoint's two fsyncs stay off the event loop."""
        if self.path == ":memory:":
            return
        try:
            other = sqlite3.connect(self.path, timeout=1.0, isolation_level=None)
            try:
                other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                other.close()
        except sqlite3.Error as exc:
            raise StoreError(_hint(self.path, exc)) from exc
        for path in (self.path, self.path + "-wal"):
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(f"store {path}: cannot sync ({exc})") from exc

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(_hint(self.path, exc)) from exc

    # -- writes ------------------------------------------------------------------------------
    def append_events(self, events: Sequence[dict[str, Any]],
                      incidents: Sequence[IncidentRecord] = (),
                      counters: Counters | None = None,
                      actions: Sequence[tuple[str, dict[str, Any]]] = ()) -> None:
        with self._tx(durable=bool(actions)):
            self._db.executemany(
                "INSERT OR REPLACE INTO events (id, incident_id, ts, doc) VALUES (?, ?, ?, ?)",
                [(e["id"], e["incident_id"], float(e["ts"]), orjson.dumps(e)) for e in events])
            for iid, entry in actions:
                self._insert_action(iid, entry)
            self._put_incidents(incidents)
            if counters is not None:
                self._db.executemany(
                    "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) "
                    "DO UPDATE SET value = max(value, excluded.value)",
                    [("event_seq", counters.event_seq), ("incident_seq", counters.incident_seq)])

    def record_action(self, incident_id: str, entry: dict[str, Any],
                      incident: IncidentRecord) -> None:
        with self._tx(durable=True):
            self._insert_action(incident_id, entry)
            self._put_incidents([incident])

    def save_incident(self, incident: IncidentRecord) -> None:
        with self._tx():
            self._put_incidents([incident])

    def _insert_action(self, incident_id: str, entry: dict[str, Any]) -> None:
        self._db.execute("INSERT INTO actions (incident_id, ts, action, by, note) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (incident_id, float(entry["ts"]), str(entry["action"]),
                          entry.get("by"), entry.get("note")))

    def _put_incidents(self, incidents: Sequence[IncidentRecord]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO incidents (id, status, stream, key, doc, state) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(r.id, r.status, r.stream, r.key, orjson.dumps(r.doc),
              None if r.state is None else orjson.dumps(r.state)) for r in incidents])

    # -- reads -------------------------------------------------------------------------------
    def load_recent_events(self, n: int) -> list[dict[str, Any]]:
        rows = self._read("SELECT doc FROM events ORDER BY id DESC LIMIT ?", (max(0, n),))
        return [orjson.loads(r[0]) for r in reversed(rows)]

    def count_events(self) -> int:
        return int(self._read("SELECT count(*) FROM events")[0][0])

    def load_open_incidents(self) -> list[IncidentRecord]:
        return self._incidents("SELECT id, status, stream, key, doc, state FROM incidents "
                               "WHERE status != 'resolved' ORDER BY id")

    def load_recent_incidents(self, resolved: int) -> list[IncidentRecord]:
        done = self._incidents("SELECT id, status, stream, key, doc, state FROM incidents "
                               "WHERE status = 'resolved' ORDER BY id DESC LIMIT ?",
                               (max(0, resolved),))
        both = done + self.load_open_incidents()
        return sorted(both, key=lambda r: (len(r.id), r.id))

    def _incidents(self, sql: str, args: Sequence[Any] = ()) -> list[IncidentRecord]:
        return [IncidentRecord(i, st, stream, key, orjson.loads(doc),
                               None if state is None else orjson.loads(state))
                for i, st, stream, key, doc, state in self._read(sql, args)]

    def load_incidents_started(self, start: float, end: float) -> list[IncidentRecord]:
        # a scan of the incidents table (no column or index on started_at: the schema stays
        # at its version; measured in the review's report)
        found = self._incidents(
            "SELECT id, status, stream, key, doc, state FROM incidents WHERE "
            "json_extract(CAST(doc AS TEXT), '$.started_at') >= ? AND "
            "json_extract(CAST(doc AS TEXT), '$.started_at') < ?", (float(start), float(end)))
        return sorted(found, key=lambda r: (len(r.id), r.id))

    def load_actions(self, incident_id: str) -> list[dict[str, Any]]:
        rows = self._read("SELECT ts, action, by, note FROM actions WHERE incident_id = ? "
                          "ORDER BY seq", (incident_id,))
        return [{"ts": ts, "action": a, "by": by, "note": note} for ts, a, by, note in rows]

    def counters(self) -> Counters:
        """The stored counters, never below the highest stored ids (belt and braces)."""
        meta = dict(self._read("SELECT name, value FROM meta"))
        top_event = self._read("SELECT max(id) FROM events")[0][0]
        top_inc = self._read("SELECT max(id) FROM incidents")[0][0]
        ev = int(top_event) if top_event and str(top_event).isdigit() else 0
        inc_tail = str(top_inc or "").rpartition("-")[2]
        inc = int(inc_tail) if inc_tail.isdigit() else 0
        return Counters(max(int(meta.get("event_seq", 0)), ev),
                        max(int(meta.get("incident_seq", 0)), inc))

    # -- webhooks (notify/webhook.py) --------------------------------------------------------
    def save_webhook(self, doc: dict[str, Any]) -> None:
        with self._tx(durable=True):
            self._db.execute("INSERT OR REPLACE INTO webhooks (id, doc) VALUES (?, ?)",
                             (doc["id"], orjson.dumps(doc)))

    def delete_webhook(self, webhook_id: str) -> None:
        """The subscription and its pending deliveries (its dead letters stay)."""
        with self._tx(durable=True):
            self._db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
            self._db.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ? AND dead = 0",
                             (webhook_id,))

    def update_deliveries(self, pending: Sequence[tuple[str, str, dict[str, Any]]] = (),
                          done: Sequence[str] = (),
                          dead: Sequence[tuple[str, str, dict[str, Any]]] = ()) -> None:
        """New pending deliveries (key, webhook id, event), delivered keys (removed) and dead
        letters (key, webhook id, record), in one transaction."""
        with self._tx():
            self._db.executemany(
                "INSERT OR IGNORE INTO webhook_deliveries (key, webhook_id, dead, doc) "
                "VALUES (?, ?, 0, ?)", [(k, w, orjson.dumps(e)) for k, w, e in pending])
            self._db.executemany("DELETE FROM webhook_deliveries WHERE key = ? AND dead = 0",
                                 [(k,) for k in done])
            self._db.executemany(
                "INSERT OR REPLACE INTO webhook_deliveries (key, webhook_id, dead, doc) "
                "VALUES (?, ?, 1, ?)", [(k, w, orjson.dumps(d)) for k, w, d in dead])

    def load_webhooks(self) -> list[dict[str, Any]]:
        return [orjson.loads(r[0]) for r in self._read("SELECT doc FROM webhooks ORDER BY id")]

    def load_deliveries(self, dead: bool, limit: int = -1) -> list[tuple[str, str, dict[str,
                                                                                       Any]]]:
        """Pending deliveries in key order (all), or the newest `limit` dead letters, oldest
        first; as (key, webhook id, doc)."""
        if not dead:
            rows = self._read("SELECT key, webhook_id, doc FROM webhook_deliveries "
                              "WHERE dead = 0 ORDER BY key")
            return [(k, w, orjson.loads(d)) for k, w, d in rows]
        rows = self._read("SELECT key, webhook_id, doc FROM webhook_deliveries WHERE dead = 1 "
                          "ORDER BY json_extract(CAST(doc AS TEXT), '$.dead_at') DESC, key DESC "
                          "LIMIT ?", (limit,))
        return [(k, w, orjson.loads(d)) for k, w, d in reversed(rows)]

    # -- silences (incidents/silence.py) -----------------------------------------------------
    def save_silence(self, doc: dict[str, Any]) -> None:
        with self._tx(durable=True):
            self._db.execute("INSERT OR REPLACE INTO silences (id, ends_at, doc) VALUES (?, ?, ?)",
                             (doc["id"], float(doc["ends_at"]), orjson.dumps(doc)))

    def load_silences(self) -> list[dict[str, Any]]:
        return [orjson.loads(r[0]) for r in self._read("SELECT doc FROM silences ORDER BY id")]

    # -- escalation timers (incidents/escalate.py) -------------------------------------------
    def save_escalation(self, doc: dict[str, Any]) -> None:
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO escalations (incident_id, doc) VALUES (?, ?)",
                             (doc["incident_id"], orjson.dumps(doc)))

    def delete_escalation(self, incident_id: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM escalations WHERE incident_id = ?", (incident_id,))

    def load_escalations(self) -> list[dict[str, Any]]:
        return [orjson.loads(r[0]) for r in self._read(
            "SELECT doc FROM escalations ORDER BY incident_id")]

    def limit_pages(self, pages: int | None) -> int:
        """Test-facing: cap the file at `pages` pages (SQLite's `PRAGMA max_page_count`, never
        below the file's current size, so 0 means "full now"); None lifts the cap. Writes that
        need more pages then fail with SQLite's own "database or disk is full" (SQLITE_FULL),
        the same error path as a full disk, without filling one - tests/store/test_store_full.py
        and benchmarks/faults.py use it. Per connection, not kept in the file: a restart has no
        cap. Returns the cap in force. Call it on the store's thread, like every method."""
        n = self._pages_default if pages is None else max(1, int(pages))   # 0 would only ask
        try:
            return int(self._db.execute(f"PRAGMA max_page_count = {n}").fetchone()[0])
        except sqlite3.Error as exc:
            raise StoreError(_hint(self.path, exc)) from exc

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass


def open_store(data_dir: str | Path | None, **kwargs: Any) -> SqliteStore:
    """The store file under `data_dir` (created if missing); None: an in-memory store."""
    if data_dir is None:
        return SqliteStore(":memory:", **kwargs)
    d = Path(data_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"data dir {d}: cannot be created ({exc})") from exc
    if not d.is_dir():
        raise StoreError(f"data dir {d}: not a directory")
    return SqliteStore(d / DB_FILE, **kwargs)
