"""Ingestion: turning pushed bodies and recorded files into columnar batches of checked samples.

`parse` holds the sample rules of CONTRACTS.md §2 (and the hot-path decoder); `csvfile` reads the
NAB `timestamp,value` layout that `streamwatch replay` also accepts.
"""
from __future__ import annotations

__all__: list[str] = []
