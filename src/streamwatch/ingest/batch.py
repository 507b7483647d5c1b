"""The samples ingestion produces: a columnar Batch, per-sample Rejections and their Reasons.

Kept apart from the parsers (parse.py, the exact one; fastpath.py + scan.py, the fast one) so every
stage that only passes batches along depends on this small module alone.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np

from streamwatch.types import Floats, Ints

__all__ = ["Reason", "Rejection", "Batch", "ParseResult", "Limits"]


class Reason(StrEnum):
    """Why a sample was refused; the values are the `reason` strings of API errors and /metrics."""
    MALFORMED = "malformed"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"
    NEGATIVE_COUNT = "negative_count"
    ABSURD_TIMESTAMP = "absurd_timestamp"
    OVERSIZED_LABELS = "oversized_labels"
    EMPTY_NAME = "empty_name"
    STREAM_LIMIT = "stream_limit"          # a new stream while ingest.max_streams are tracked
    METRIC_LIMIT = "metric_limit"          # a new metric while ingest.max_metrics are tracked


@dataclass(slots=True)
class Rejection:
    """One refused sample (or, as `ParseResult.fatal`, a refused body): where, which field, why."""
    position: int                          # 0-based index (array) or 1-based line (NDJSON)
    position_kind: Literal["index", "line"]
    field: str                             # "" when no single field is to blame
    reason: Reason
    detail: str                            # a sentence, e.g. "NaN is not a finite number"


@dataclass(slots=True)
class Batch:
    """The good samples in input order, column-wise so later stages can stay vectorised."""
    streams: list[str]
    metrics: list[str]
    ts: Floats                             # unix seconds
    values: Floats
    labels: list[dict[str, str] | None]
    positions: Ints                        # index or line each sample came from
    # ids of the names in the pipeline's interning (ingest/names.py), when the parser had them:
    # the table then skips looking names up (ingest/fastpath.py)
    sids: Ints | None = None
    mids: Ints | None = None

    def __len__(self) -> int:
        return len(self.streams)

    @staticmethod
    def empty() -> Batch:
        return Batch([], [], np.empty(0), np.empty(0), [], np.empty(0, np.int64))

    @staticmethod
    def concat(batches: Iterable[Batch]) -> Batch:
        parts = [b for b in batches if len(b)]
        if len(parts) <= 1:
            return parts[0] if parts else Batch.empty()
        streams, metrics, labels = [], [], []
        for b in parts:
            streams += b.streams
            metrics += b.metrics
            labels += b.labels
        ids = all(b.sids is not None and b.mids is not None for b in parts)
        return Batch(streams, metrics, np.concatenate([b.ts for b in parts]),
                     np.concatenate([b.values for b in parts]), labels,
                     np.concatenate([b.positions for b in parts]),
                     np.concatenate([b.sids for b in parts]) if ids else None,  # type: ignore[misc]
                     np.concatenate([b.mids for b in parts]) if ids else None)  # type: ignore[misc]


@dataclass(slots=True)
class ParseResult:
    """`fatal` set means the body as a whole is unreadable (then `batch` is empty).

    `bytes_read` is progress for `iter_ndjson_file`: bytes of the file consumed up to and including
    this chunk (0 for in-memory parses)."""
    batch: Batch
    rejections: list[Rejection]
    fatal: Rejection | None = None
    bytes_read: int = 0
    lines: int = -1          # newlines consumed, when the parser counted them (-1: not counted)


@dataclass(frozen=True)
class Limits:
    max_labels: int = 16
    max_label_len: int = 128
    future_skew_s: float = 300.0
    min_ts: float = 946684800.0            # 2000-01-01T00:00:00Z
    # streams tracked at most; a sample of a new stream beyond is rejected (ingest/newnames.py).
    # None: no limit (replay of a file)
    max_streams: int | None = None
    # metric names tracked at most, likewise: one stream x a million metric names would grow the
    # detector table (a row per stream x metric) without bound
    max_metrics: int | None = None
