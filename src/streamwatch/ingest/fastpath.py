"""NDJSON -> Batch through the numba scanner first, the exact parser for whatever it declines.

`Interned.parse_ndjson` has the signature of `parse.parse_ndjson` and gives the same samples and
the same rejections (tests/ingest/test_fastpath.py checks both on the same inputs), but returns
the stream and metric ids of the pipeline's interning with the Batch, so no name is looked up
per sample downstream. Lines the scanner marks SLOW - and fast lines breaking a range rule, so
the exact parser words the rejection - are parsed by `parse.parse_ndjson` as a block, and the
two parts are merged back in line order.

A name neither has seen gets a provisional id; `commit` (ingest/newnames.py) interns the names of
the accepted samples, under the stream and metric limits. `parse_ndjson` commits before it
returns, unless given a `staging` - then the caller commits once the whole body is parsed
(api/samples.py).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import orjson

from streamwatch.ingest.names import PROVISIONAL, Names, NameView
from streamwatch.ingest.batch import Batch, Limits, ParseResult
from streamwatch.ingest.newnames import Staging, commit
from streamwatch.ingest.parse import parse_ndjson
from streamwatch.ingest.scan import FAST, SLOW, scan

__all__ = ["Interned", "NameView", "LazyLabels", "Staging"]

log = logging.getLogger("streamwatch.ingest")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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

    def present(self) -> list[int]:
        """Positions that carry labels (without decoding any)."""
        return np.flatnonzero(self._a >= 0).tolist()

    def take(self, idx: np.ndarray) -> LazyLabels:
        """The labels at positions `idx`, still undecoded."""
        return LazyLabels(self._data, self._a[idx], self._b[idx])


@dataclass
class Interned:
    """The parse stage bound to a pipeline's name interning."""
    streams: Names
    metrics: Names
    _after: tuple[int, int] = field(default=(0, 0), repr=False)  # sizes after the last commit

    def parse_ndjson(self, data: bytes, *, now: float, limits: Limits = Limits(),
                     first_line: int = 1, staging: Staging | None = None) -> ParseResult:
        """With `staging`, new names keep provisional ids (shared by every call given the same
        staging) and the caller must `commit`; without, the result comes committed."""
        st = staging if staging is not None else Staging()
        if not data.isascii() and not _is_utf8(data):
            # the scanner passes any byte >= 0x80 inside a string, so a label with invalid UTF-8
            # would be accepted and fail when read; the exact parser names such lines instead
            res = parse_ndjson(data, now=now, limits=limits, first_line=first_line)
            return res if staging is not None else self.commit(res, st, limits)
        buf = np.frombuffer(data, np.uint8)
        r = scan(buf, self.streams, self.metrics, limits.max_labels, limits.max_label_len)
        status = r.status
        fast = status == FAST
        self._resolve_new_names(data, r, fast, st)
        fast &= (r.sid >= 0) & (r.mid >= 0)     # (ids are only meaningful on FAST lines)
        # range rules: a breaking line goes to the exact parser, which words the rejection
        counter = self._counter_flags(st)
        mid = np.where(fast, r.mid, 0)
        if st.metrics.names:                    # provisional ids index after the interned ones
            mid = np.where(mid >= PROVISIONAL, mid - PROVISIONAL + len(self.metrics), mid)
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
            if res.fatal is not None:           # (the exact parser never has one for NDJSON)
                res.fatal.position = int(lines[si][res.fatal.position - 1])
                return ParseResult(Batch.empty(), [], res.fatal)
            for rej in res.rejections:
                rej.position = int(lines[si][rej.position - 1])
            rejections = res.rejections
            sb = res.batch
            if len(sb):
                sids = np.concatenate([sids, st.streams.ids(sb.streams, self.streams)])
                mids = np.concatenate([mids, st.metrics.ids(sb.metrics, self.metrics)])
                ts = np.concatenate([ts, sb.ts])
                values = np.concatenate([values, sb.values])
                positions = np.concatenate([positions, lines[si][sb.positions - 1]])
                labels = list(labels) + list(sb.labels)
                order = np.argsort(positions, kind="stable")
                sids, mids, ts, values, positions = (a[order] for a in (sids, mids, ts, values,
                                                                        positions))
                labels = [labels[i] for i in order.tolist()]
        batch = Batch(NameView(sids, self.streams.names, st.streams.names),  # type: ignore[arg-type]
                      NameView(mids, self.metrics.names, st.metrics.names),  # type: ignore[arg-type]
                      ts, values, labels, positions, sids, mids)  # type: ignore[arg-type]
        lines_seen = r.n - (1 if len(data) and data[-1:] != b"\n" else 0)
        result = ParseResult(batch, rejections, lines=lines_seen)
        return result if staging is not None else self.commit(result, st, limits)

    # -- new names (ingest/newnames.py) ------------------------------------------------------
    def commit(self, result: ParseResult, staging: Staging | None = None,
               limits: Limits = Limits(), kind: Literal["index", "line"] = "line"
               ) -> ParseResult:
        """Intern the new names of the result's accepted samples, under `limits.max_streams`
        and `limits.max_metrics`; run it right before the batch is queued, and
        `rollback(mark)` if the queue refuses."""
        out = commit(result, staging, self.streams, self.metrics, limits, kind)
        self._after = (len(self.streams), len(self.metrics))
        return out

    def mark(self) -> tuple[int, int]:
        """The interning's size now, for `rollback`."""
        return len(self.streams), len(self.metrics)

    def rollback(self, mark: tuple[int, int]) -> bool:
        """Forget the names the last commit interned (its batch was refused). Only if nothing
        was interned since: else the names may be in use, and stay (logged); False then."""
        if (len(self.streams), len(self.metrics)) != self._after:
            log.warning("new names not rolled back: others were interned since",
                        extra={"streams": len(self.streams), "mark": mark[0]})
            return False
        self.streams.truncate(mark[0])
        self.metrics.truncate(mark[1])
        self._after = mark
        return True

    def _resolve_new_names(self, data: bytes, r, fast: np.ndarray,  # type: ignore[no-untyped-def]
                           st: Staging) -> None:
        """First sight of a name: a provisional id. One Python step per *distinct* new name
        (found by the scanner's hash), then every line carrying it gets the id."""
        for ids, hashes, starts, ends, pending in ((r.sid, r.sh, r.ss, r.se, st.streams),
                                                   (r.mid, r.mh, r.ms, r.me, st.metrics)):
            todo = np.flatnonzero(fast & (ids == -1))
            if not len(todo):
                continue
            uniq, first, inverse = np.unique(hashes[todo], return_index=True, return_inverse=True)
            got = np.empty(len(uniq), np.int64)
            for k, i in enumerate(todo[first].tolist()):
                try:
                    got[k] = pending.add(data[starts[i]:ends[i]].decode("utf-8"))
                except UnicodeDecodeError:
                    got[k] = -3                       # the exact parser will say why
            ids[todo] = got[inverse.reshape(-1)]

    def _counter_flags(self, st: Staging) -> np.ndarray:
        """Counter or not, per metric id: the interned ones, then the provisional ones."""
        names = self.metrics.names + st.metrics.names if st.metrics.names else self.metrics.names
        return np.array([m.endswith("_total") or m == "live" for m in names] or [False],
                        np.bool_)
