"""The durable store: incidents, their events and operator actions, behind one small interface.

`Store` (base.py) is all the rest of the code sees; `SqliteStore` (sqlite.py) is the embedded
default (one WAL file under the data dir, nothing to install). A PostgreSQL backend implements
the same Protocol; no SQL lives outside this package.
"""
from __future__ import annotations

from streamwatch.store.base import Counters, IncidentRecord, Store, StoreError
from streamwatch.store.sqlite import DB_FILE, SqliteStore, open_store

__all__ = ["Counters", "IncidentRecord", "Store", "StoreError", "SqliteStore", "open_store",
           "DB_FILE"]
