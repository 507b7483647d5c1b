"""NDJSON -> Batch through the numba scanner first, the exact parser for whatever it declines.

`Interned.parse_ndjson` has the signature of `parse.parse_ndjson` and gives the same samples and
the same rejections (tests/ingest/test_fastpath.py checks both on the same inputs), but returns
the stream and metric ids of the pipeline's interning with the Batch, so no name is looked up
per sample downstream. Lines the scanner marks SLOW - and fast lines breaking a range rule, so
the exact parser words the rejection - are parsed by `parse.parse_ndjson` as a block, and the
two parts are merged back in line order.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from streamwatch.ingest.names import Names
from streamwatch.ingest.batch import Batch, Limits, ParseResult
from streamwatch.ingest.parse import parse_ndjson
from streamwatch.ingest.scan import FAST, SLOW, scan

__all__ = ["Interned", "NameView", "LazyLabels"]


class NameView(Sequence[str]):
    """The names of a batch as a read-only sequence over ids: no list built unless asked for."""
    __slots__ = ("_ids", "_names")

    def __init__(self, ids: np.ndarray, names: list[str]) -> None:
        self._ids = ids
        self._names = names

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if isinstance(i, slice):
            return NameView(self._ids[i], self._names)
        return self._names[self._ids[i]]

    def __iter__(self) -> Iterator[str]:
        names = self._names
        return (names[i] for i in self._ids.tolist())

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented


class LazyLabels(Sequence[dict[str, str] | None]):
    """Labels decoded only when someone reads them (replay never does)."""
    __slots__ = ("_data", "_a", "_b")

    def __init__(self, data: bytes, a: np.ndarray, b: np.ndarray) -> None:
        self._data, self._a, self._b = data, a, b

    def __len__(self) -> int:
        return len(self._a)

    def __getitem__(self, k):  # type: ignore[no-untyped-def, override]
        if isinstance(k, slice):
            return LazyLabels(self._data, self._a[k], self._b[k])
        a = int(self._a[k])
        return None if a < 0 else orjson.loads(self._data[a:int(self._b[k])])


@dataclass
class Interned:
    """The parse stage bound to a pipeline's name interning."""
    streams: Names
    metrics: Names

    def parse_ndjson(self, data: bytes, *, now: float, limits: Limits = Limits(),
                     first_line: int = 1) -> ParseResult:
        buf = np.frombuffer(data, np.uint8)
        r = scan(buf, self.streams, self.metrics, limits.max_labels, limits.max_label_len)
        status = r.status
        fast = status == FAST
        self._resolve_new_names(data, r, fast)
        fast &= (r.sid >= 0) & (r.mid >= 0)     # (ids are only meaningful on FAST lines)
        # range rules: a breaking line goes to the exact parser, which words the rejection
        counter = self._counter_flags()
        mid = np.where(fast, r.mid, 0)
        bad = fast & ((r.ts < limits.min_ts) | (r.ts > now + limits.future_skew_s)
                      | ((r.value < 0) & counter[mid]))
        fast &= ~bad
        slow = (status == SLOW) | (bad | ((status == FAST) & ~fast))
        lines = first_line + np.arange(r.n, dtype=np.int64)
        fi = np.flatnonzero(fast)
        labels: Sequence[dict[str, str] | None] = LazyLabels(data, r.lab_a[fi], r.lab_b[fi])
        sids, mids = r.sid[fi], r.mid[fi]
        ts, values, positions = r.ts[fi], r.value[fi], lines[fi]
        rejections = []
        si = np.flatnonzero(slow)
        if len(si):
            block = b"\n".join(data[a:b] for a, b in zip(r.line_a[si].tolist(),
                                                          r.line_b[si].tolist()))
            res = parse_ndjson(block, now=now, limits=limits, first_line=1)
            if res.fatal is not None:
                res.fatal.position = int(lines[si][res.fatal.position - 1])
                return ParseResult(Batch.empty(), [], res.fatal)
            for rej in res.rejections:
                rej.position = int(lines[si][rej.position - 1])
            rejections = res.rejections
            sb = res.batch
            if len(sb):
                sids = np.concatenate([sids, self.streams.lookup(list(sb.streams))])
                mids = np.concatenate([mids, self.metrics.lookup(list(sb.metrics))])
                ts = np.concatenate([ts, sb.ts])
                values = np.concatenate([values, sb.values])
                positions = np.concatenate([positions, lines[si][sb.positions - 1]])
                labels = list(labels) + list(sb.labels)
                order = np.argsort(positions, kind="stable")
                sids, mids, ts, values, positions = (a[order] for a in (sids, mids, ts, values,
                                                                        positions))
                labels = [labels[i] for i in order.tolist()]
        batch = Batch(NameView(sids, self.streams.names), NameView(mids, self.metrics.names),  # type: ignore[arg-type]
                      ts, values, labels, positions, sids, mids)  # type: ignore[arg-type]
        lines_seen = r.n - (1 if len(data) and data[-1:] != b"\n" else 0)
        return ParseResult(batch, rejections, lines=lines_seen)

    def _resolve_new_names(self, data: bytes, r, fast: np.ndarray) -> None:  # type: ignore[no-untyped-def]
        """First sight of a name: give it an id. One Python step per *distinct* new name (found
        by the scanner's hash), then every line carrying it gets the id."""
        for ids, hashes, starts, ends, names in ((r.sid, r.sh, r.ss, r.se, self.streams),
                                                 (r.mid, r.mh, r.ms, r.me, self.metrics)):
            todo = np.flatnonzero(fast & (ids == -1))
            if not len(todo):
                continue
            uniq, first, inverse = np.unique(hashes[todo], return_index=True, return_inverse=True)
            got = np.empty(len(uniq), np.int64)
            for k, i in enumerate(todo[first].tolist()):
                try:
                    got[k] = names.intern(data[starts[i]:ends[i]].decode("utf-8"))
                except UnicodeDecodeError:
                    got[k] = -3                       # the exact parser will say why
            ids[todo] = got[inverse.reshape(-1)]

    def _counter_flags(self) -> np.ndarray:
        names = self.metrics.names
        return np.array([m.endswith("_total") or m == "live" for m in names] or [False],
                        np.bool_)
