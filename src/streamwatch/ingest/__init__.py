"""Ingestion: from pushed bodies and recorded files to checked, event-time-ordered observations.

`parse` decodes bytes on the hot path (bytes -> columnar `Batch` + per-sample rejections) and
`validate` holds the sample rules of CONTRACTS.md §2 it applies; `csvfile` reads the NAB
`timestamp,value` layout that `replay` accepts; `order` and `rates` then judge event-time order and
turn counters into rates.
"""
from __future__ import annotations

__all__: list[str] = []
