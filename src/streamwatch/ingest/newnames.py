"""New names: staged while a body is parsed, interned when its batch is queued, under the limit.

Why: stream and metric names are interned (ingest/names.py) into tables that live as long as
the service. If parsing interned them, a body then refused as a whole (400, 413, 429) would
still leave its new names behind, and memory would grow with every unique name anyone sends,
refused or not. So a parse gives a name it has never seen a *provisional* id (`PROVISIONAL + k`,
k its place in a `Staging`), and only `commit` interns names - the caller runs it right before
it queues the batch, in the same step of the event loop. A push body is parsed in slices with
the loop serving other requests in between (api/samples.py); one staging spans all its slices,
and the shared tables are touched only at commit, so requests interleaving cannot hurt one
another: a refused one has interned nothing.

The stream limit (`Limits.max_streams`, from `ingest.max_streams`) is applied at commit, in
input order: a new stream is interned while fewer than `max_streams` are tracked; every sample
of a new stream beyond that is rejected alone (Reason.STREAM_LIMIT, the detail names the limit),
and samples of streams already tracked are always kept. Only accepted samples intern anything:
a sample rejected for another reason never makes its names known.

`Interned.rollback` (ingest/fastpath.py) undoes a commit whose batch the queue then refused
(429). It is exact only if nothing was interned in between, which holds when commit, submit and
rollback run without an `await`; if something was, it leaves the names (safe, logged).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import repeat
from typing import Literal

import numba as nb
import numpy as np

from streamwatch.ingest.batch import Batch, Limits, ParseResult, Reason, Rejection
from streamwatch.ingest.names import PROVISIONAL, Names, NameView
from streamwatch.types import Ints

__all__ = ["Pending", "Staging", "commit", "PROVISIONAL"]

log = logging.getLogger("streamwatch.ingest")


class Pending:
    """Names one parse (or one body's slices) saw first, by provisional id."""
    __slots__ = ("index", "names")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []

    def add(self, name: str) -> int:
        k = self.index.get(name)
        if k is None:
            k = self.index[name] = len(self.names)
            self.names.append(name)
        return PROVISIONAL + k

    def ids(self, names: Sequence[str], interned: Names) -> Ints:
        """Id per name: the interned one, else a provisional one (nothing is interned)."""
        out = np.fromiter(map(interned.ids.get, names, repeat(-1, len(names))), np.int64,
                          len(names))
        if (out < 0).any():
            for k in np.flatnonzero(out < 0).tolist():
                out[k] = self.add(names[k])
        return out


class Staging:
    """The new stream and metric names of input not committed yet."""
    __slots__ = ("streams", "metrics")

    def __init__(self) -> None:
        self.streams = Pending()
        self.metrics = Pending()


def commit(result: ParseResult, staging: Staging | None, streams: Names, metrics: Names,
           limits: Limits, kind: Literal["index", "line"] = "line") -> ParseResult:
    """Intern the new names of the result's samples (in input order) and give its batch final
    ids; samples of new streams beyond `limits.max_streams` become STREAM_LIMIT rejections.

    The batch may carry provisional ids from `staging`, or no ids at all (a JSON array, the
    simulator's dicts): then its names are looked up here."""
    b = result.batch
    if not len(b):
        return result
    st = staging if staging is not None else Staging()
    sids = b.sids if b.sids is not None else st.streams.ids(b.streams, streams)
    mids = b.mids if b.mids is not None else st.metrics.ids(b.metrics, metrics)
    new_s, new_m = sids >= PROVISIONAL, mids >= PROVISIONAL
    any_s, any_m = bool(new_s.any()), bool(new_m.any())
    if not (any_s or any_m):
        if b.sids is not None and b.mids is not None:
            return result                       # the common case: every name known
        return _with(result, b, sids, mids, None, streams, metrics)
    keep = None
    if any_s:
        sids = _intern(st.streams, sids, new_s, streams, limits.max_streams)
        if (sids < 0).any():
            keep = sids >= 0
            new_m &= keep                   # a refused sample interns no metric either
            any_m = bool(new_m.any())
    if any_m:
        mids = _intern(st.metrics, mids, new_m, metrics, None)
    out = _with(result, b, sids, mids, keep, streams, metrics)
    if keep is not None:
        out.rejections = _merge(result.rejections, _refusals(b, keep, limits.max_streams, kind))
    return out


def _intern(pending: Pending, ids: Ints, new: np.ndarray, names: Names,
            limit: int | None) -> Ints:
    """Provisional ids -> interned ids, new names in order of first appearance; -1 for a name
    that would pass `limit`."""
    idx = np.flatnonzero(new)
    prov = ids[idx] - PROVISIONAL
    to = np.full(len(pending.names), -1, np.int64)
    full = False
    for k in _first_seen(prov, len(pending.names)).tolist():
        name = pending.names[k]
        got = names.get(name)              # interned meanwhile (another body's commit)
        if got is None:
            if limit is not None and len(names) >= limit:
                full = True
                continue
            got = names.intern(name)
        to[k] = got
    if full:
        log.warning("stream limit reached: samples of new streams are rejected",
                    extra={"max_streams": limit, "streams": len(names)})
    out = ids.copy()
    out[idx] = to[prov]
    return out


@nb.njit(cache=True, nogil=True)
def _first_seen(prov, n):  # type: ignore[no-untyped-def]
    """The distinct values of `prov` (all < n) in order of first appearance; O(len(prov))."""
    seen = np.zeros(n, np.bool_)
    order = np.empty(n, np.int64)
    m = 0
    for i in range(len(prov)):
        k = prov[i]
        if not seen[k]:
            seen[k] = True
            order[m] = k
            m += 1
    return order[:m]


def _with(result: ParseResult, b: Batch, sids: Ints, mids: Ints, keep: np.ndarray | None,
          streams: Names, metrics: Names) -> ParseResult:
    """The result with a batch of final ids (named by views over the interned names), less the
    samples `keep` drops."""
    labels = b.labels
    ts, values, positions = b.ts, b.values, b.positions
    if keep is not None:
        at = np.flatnonzero(keep)
        sids, mids, ts, values, positions = sids[at], mids[at], ts[at], values[at], positions[at]
        take = getattr(labels, "take", None)
        labels = take(at) if take is not None else [labels[i] for i in at.tolist()]
    batch = Batch(NameView(sids, streams.names), NameView(mids, metrics.names),  # type: ignore[arg-type]
                  ts, values, labels, positions, sids, mids)
    return ParseResult(batch, list(result.rejections), result.fatal, result.bytes_read,
                       result.lines)


def _refusals(b: Batch, keep: np.ndarray, limit: int | None,
              kind: Literal["index", "line"]) -> list[Rejection]:
    out = []
    for i in np.flatnonzero(~keep).tolist():
        name = b.streams[i]
        out.append(Rejection(
            int(b.positions[i]), kind, "stream", Reason.STREAM_LIMIT,
            f"stream {name[:80]!r} is new and {limit} streams are tracked already, the limit "
            f"(ingest.max_streams = {limit}); samples of tracked streams are still accepted"))
    return out


def _merge(a: list[Rejection], b: list[Rejection]) -> list[Rejection]:
    if not a:
        return b
    return sorted(a + b, key=lambda r: r.position)
