"""New names: staged while a body is parsed, interned when its batch is queued, under the limits.

Why: stream and metric names are interned (ingest/names.py) into tables that live as long as
the service. If parsing interned them, a body then refused as a whole (400, 413, 429) would
still leave its new names behind, and memory would grow with every unique name anyone sends,
refused or not. So a parse gives a name it has never seen a *provisional* id (`PROVISIONAL + k`,
k its place in a `Staging`), and only `commit` interns names - the caller runs it right before
it queues the batch, in the same step of the event loop. A push body is parsed in slices with
the loop serving other requests in between (api/samples.py); one staging spans all its slices,
and the shared tables are touched only at commit, so requests interleaving cannot hurt one
another: a refused one has interned nothing.

The limits (`Limits.max_streams` and `Limits.max_metrics`, from `ingest.max_streams` and
`ingest.max_metrics`) are applied at commit, sample by sample in input order: a sample is kept
if its stream is tracked or fewer than `max_streams` are, and its metric is tracked or fewer
than `max_metrics` are; else it is rejected alone (Reason.STREAM_LIMIT if its stream is new
and over, else METRIC_LIMIT; the detail names the limit), and samples of tracked names are
always kept. Why one walk for both: only accepted samples intern anything - a sample refused for
its metric must not make its new stream known (nor take a place under the stream limit), and
the other way round - and a sample rejected for another reason never makes its names known.
The walk is one numba loop (`_admit`), run only for a batch that has a new name at all.

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
    ids; samples of new streams beyond `limits.max_streams` become STREAM_LIMIT rejections,
    samples of new metrics beyond `limits.max_metrics` METRIC_LIMIT ones.

    The batch may carry provisional ids from `staging`, or no ids at all (a JSON array, the
    simulator's dicts): then its names are looked up here."""
    b = result.batch
    if not len(b):
        return result
    st = staging if staging is not None else Staging()
    sids = b.sids if b.sids is not None else st.streams.ids(b.streams, streams)
    mids = b.mids if b.mids is not None else st.metrics.ids(b.metrics, metrics)
    if int(sids.max()) < PROVISIONAL and int(mids.max()) < PROVISIONAL:
        if b.sids is not None and b.mids is not None:
            return result                       # the common case: every name known
        return _with(result, b, sids, mids, None, streams, metrics)
    n_s, n_m = len(streams), len(metrics)
    sids, mids = sids.copy(), mids.copy()
    status, s_new, m_new = _admit(sids, mids, _known(st.streams, streams),
                                  _known(st.metrics, metrics), n_s, n_m,
                                  _cap(limits.max_streams), _cap(limits.max_metrics))
    for k in s_new.tolist():                    # the ids `_admit` gave, in the same order
        streams.intern(st.streams.names[k])
    for k in m_new.tolist():
        metrics.intern(st.metrics.names[k])
    if len(streams) != n_s + len(s_new) or len(metrics) != n_m + len(m_new):
        raise RuntimeError("names interned during a commit: batch ids would be wrong")
    if not status.any():
        return _with(result, b, sids, mids, None, streams, metrics)
    out = _with(result, b, sids, mids, status == _KEPT, streams, metrics)
    out.rejections = _merge(result.rejections, _refusals(b, status, limits, kind))
    if (status == _STREAM_FULL).any():
        log.warning("stream limit reached: samples of new streams are rejected",
                    extra={"max_streams": limits.max_streams, "streams": len(streams)})
    if (status == _METRIC_FULL).any():
        log.warning("metric limit reached: samples of new metrics are rejected",
                    extra={"max_metrics": limits.max_metrics, "metrics": len(metrics)})
    return out


_KEPT, _STREAM_FULL, _METRIC_FULL = 0, 1, 2     # `_admit`'s verdict per sample
_NO_LIMIT = 1 << 62


def _cap(limit: int | None) -> int:
    return _NO_LIMIT if limit is None else limit


def _known(pending: Pending, names: Names) -> Ints:
    """Per staged name: its id if it was interned meanwhile (another body's commit), else -1."""
    n = len(pending.names)
    return np.fromiter(map(names.ids.get, pending.names, repeat(-1, n)), np.int64, n)


@nb.njit(cache=True, nogil=True)
def _admit(sids, mids, s_id, m_id, n_s, n_m, cap_s, cap_m):  # type: ignore[no-untyped-def]
    """The limits, sample by sample in input order (module notes). Rewrites provisional ids in
    `sids`/`mids` to final ones (new names numbered on from `n_s`/`n_m` in order of first
    acceptance; `s_id`/`m_id`, the staged names' ids, are filled in as they are given). Returns
    the verdict per sample and the staged names to intern, in the order of their new ids."""
    status = np.zeros(len(sids), np.int8)
    s_new = np.empty(len(s_id), np.int64)
    m_new = np.empty(len(m_id), np.int64)
    ns = 0
    nm = 0
    for i in range(len(sids)):
        s = sids[i] - PROVISIONAL               # >= 0: a staged name
        m = mids[i] - PROVISIONAL
        new_s = s >= 0 and s_id[s] < 0
        new_m = m >= 0 and m_id[m] < 0
        if new_s and n_s + ns >= cap_s:
            status[i] = _STREAM_FULL
            continue
        if new_m and n_m + nm >= cap_m:
            status[i] = _METRIC_FULL
            continue
        if new_s:
            s_id[s] = n_s + ns
            s_new[ns] = s
            ns += 1
        if new_m:
            m_id[m] = n_m + nm
            m_new[nm] = m
            nm += 1
        if s >= 0:
            sids[i] = s_id[s]
        if m >= 0:
            mids[i] = m_id[m]
    return status, s_new[:ns], m_new[:nm]


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


def _refusals(b: Batch, status: np.ndarray, limits: Limits,
              kind: Literal["index", "line"]) -> list[Rejection]:
    out = []
    for i in np.flatnonzero(status).tolist():
        if status[i] == _STREAM_FULL:
            name, limit = b.streams[i], limits.max_streams
            out.append(Rejection(
                int(b.positions[i]), kind, "stream", Reason.STREAM_LIMIT,
                f"stream {name[:80]!r} is new and {limit} streams are tracked already, the limit "
                f"(ingest.max_streams = {limit}); samples of tracked streams are still accepted"))
        else:
            name, limit = b.metrics[i], limits.max_metrics
            out.append(Rejection(
                int(b.positions[i]), kind, "metric", Reason.METRIC_LIMIT,
                f"metric {name[:80]!r} is new and {limit} metrics are tracked already, the limit "
                f"(ingest.max_metrics = {limit}); samples of tracked metrics are still accepted"))
    return out


def _merge(a: list[Rejection], b: list[Rejection]) -> list[Rejection]:
    if not a:
        return b
    return sorted(a + b, key=lambda r: r.position)
