"""Names: interning of stream and metric names to dense ids, usable from numba kernels.

The hot path never creates a Python string per sample: the NDJSON scanner (ingest/scan.py)
hashes the raw bytes of a name (FNV-1a, 64 bit) and finds its id in an open-addressing table held
in numpy arrays. Python sees a name only the first time it appears, to give it an id. A 64-bit
hash collision between two different names is detected when the second is added, and that name
is then marked so the scanner sends its lines down the exact (slow) path.

The parsers add no name themselves: a name is interned when the batch carrying it is committed
(ingest/newnames.py), right before it is queued, and `truncate` takes the newest names back out
when the queue then refuses that batch; so a refused body leaves no name behind.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat

import numba as nb
import numpy as np

from streamwatch.types import Ints

__all__ = ["Names", "NameView", "fnv1a", "lookup_hash", "relookup", "PROVISIONAL"]

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_EMPTY = np.uint64(0)
# ids from here on are provisional: names a parse saw first, not interned yet (ingest/newnames.py)
PROVISIONAL = 1 << 40


@nb.njit(cache=True, nogil=True)
def _fnv(buf, start, end):  # type: ignore[no-untyped-def]
    h = np.uint64(14695981039346656037)
    for i in range(start, end):
        h = (h ^ np.uint64(buf[i])) * np.uint64(1099511628211)
    if h == np.uint64(0):           # 0 marks an empty slot
        h = np.uint64(1)
    return h


def fnv1a(name: str) -> int:
    b = np.frombuffer(name.encode("utf-8"), np.uint8)
    return int(_fnv(b, 0, len(b)))


@nb.njit(cache=True, nogil=True)
def lookup_hash(keys, vals, h):  # type: ignore[no-untyped-def]
    """Id of hash h, -1 if unknown, -2 if the hash is ambiguous (collision)."""
    mask = len(keys) - 1
    j = np.int64(h & np.uint64(mask))
    while True:
        k = keys[j]
        if k == h:
            return vals[j]
        if k == np.uint64(0):
            return -1
        j = (j + 1) & mask


@nb.njit(cache=True, nogil=True)
def relookup(buf, starts, ends, idx, keys, vals, out):  # type: ignore[no-untyped-def]
    """out[idx[k]] = id of the name at buf[starts[k]:ends[k]] (-1 unknown), for k in idx."""
    left = 0
    for k in range(len(idx)):
        i = idx[k]
        got = lookup_hash(keys, vals, _fnv(buf, starts[i], ends[i]))
        out[i] = got
        if got == -1:
            left += 1
    return left


@nb.njit(cache=True, nogil=True)
def _remove(keys, vals, hashes, ids):  # type: ignore[no-untyped-def]
    """Delete (hash, id) pairs, newest first, by backward-shift deletion (no tombstones: every
    remaining key stays reachable from its home slot). A slot two names share (-2) stays as it
    is: its lines keep taking the exact path, which looks names up by string."""
    mask = len(keys) - 1
    for k in range(len(hashes) - 1, -1, -1):
        h = hashes[k]
        j = np.int64(h & np.uint64(mask))
        while keys[j] != h and keys[j] != np.uint64(0):
            j = (j + 1) & mask
        if keys[j] != h or vals[j] != ids[k]:
            continue
        i = j
        while True:
            j = (j + 1) & mask
            kj = keys[j]
            if kj == np.uint64(0):
                break
            home = np.int64(kj & np.uint64(mask))
            # the key at j may fill the hole at i unless its home lies cyclically in (i, j]
            if (j > i and (home <= i or home > j)) or (j < i and home <= i and home > j):
                keys[i] = kj
                vals[i] = vals[j]
                i = j
        keys[i] = np.uint64(0)
        vals[i] = -1


class NameView(Sequence[str]):
    """The names of a batch as a read-only sequence over ids: no list built unless asked for.
    `pending`: the names of provisional ids (>= PROVISIONAL), for a batch not committed yet."""
    __slots__ = ("_ids", "_names", "_pending")

    def __init__(self, ids: np.ndarray, names: list[str], pending: list[str] | None = None) -> None:
        self._ids = ids
        self._names = names
        self._pending = pending or None

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if isinstance(i, slice):
            return NameView(self._ids[i], self._names, self._pending)
        k = int(self._ids[i])
        return self._names[k] if k < PROVISIONAL else self._pending[k - PROVISIONAL]  # type: ignore[index]

    def __iter__(self) -> Iterator[str]:
        names, pending = self._names, self._pending
        if pending:
            return (names[i] if i < PROVISIONAL else pending[i - PROVISIONAL]
                    for i in self._ids.tolist())
        return (names[i] for i in self._ids.tolist())

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented


class Names:
    """Dense ids for names, with a numba-readable hash table of their UTF-8 bytes."""

    def __init__(self, capacity: int = 1024) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self._hashes: list[int] = []           # FNV-1a of each name, for rehash and truncate
        size = 1
        while size < 2 * capacity:
            size *= 2
        self.keys = np.zeros(size, np.uint64)
        self.vals = np.full(size, -1, np.int64)

    def __len__(self) -> int:
        return len(self.names)

    def get(self, name: str) -> int | None:
        return self.ids.get(name)

    def intern(self, name: str) -> int:
        i = self.ids.get(name)
        if i is not None:
            return i
        i = len(self.names)
        h = fnv1a(name)
        self.ids[name] = i
        self.names.append(name)
        self._hashes.append(h)
        if 2 * len(self.names) > len(self.keys):
            self._rehash()
        self._put(h, i)
        return i

    def truncate(self, n: int) -> int:
        """Forget the names with ids >= n (the newest); how many were removed. Only for names
        nothing refers to: those of a commit whose batch the queue then refused."""
        gone = len(self.names) - n
        if gone <= 0:
            return 0
        _remove(self.keys, self.vals, np.array(self._hashes[n:], np.uint64),
                np.arange(n, len(self.names), dtype=np.int64))
        for name in self.names[n:]:
            del self.ids[name]
        del self.names[n:], self._hashes[n:]
        return gone

    def _put(self, h: int, i: int) -> None:
        keys, vals = self.keys, self.vals
        mask = len(keys) - 1
        j = h & mask
        while keys[j] != 0 and keys[j] != h:
            j = (j + 1) & mask
        if keys[j] == h:
            vals[j] = -2                       # two names, one hash: both take the slow path
        else:
            keys[j] = np.uint64(h)
            vals[j] = i

    def _rehash(self) -> None:
        self.keys = np.zeros(len(self.keys) * 2, np.uint64)
        self.vals = np.full(len(self.keys), -1, np.int64)
        for i, h in enumerate(self._hashes[:-1]):
            self._put(h, i)

    def lookup(self, names: list[str]) -> Ints:
        """Ids for a list of names, interning the new ones."""
        out = np.fromiter(map(self.ids.get, names, repeat(-1, len(names))), np.int64, len(names))
        if (out < 0).any():
            for k in np.flatnonzero(out < 0).tolist():
                out[k] = self.intern(names[k])
        return out
