"""Names: interning of stream and metric names to dense ids, usable from numba kernels.

The hot path never creates a Python string per sample: the NDJSON scanner (ingest/scan.py)
hashes the raw bytes of a name (FNV-1a, 64 bit) and finds its id in an open-addressing table held
in numpy arrays. Python sees a name only the first time it appears, to give it an id. A 64-bit
hash collision between two different names is detected when the second is added, and that name
is then marked so the scanner sends its lines down the exact (slow) path.
"""
from __future__ import annotations

from itertools import repeat

import numba as nb
import numpy as np

from streamwatch.types import Ints

__all__ = ["Names", "fnv1a", "lookup_hash", "relookup"]

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_EMPTY = np.uint64(0)


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


class Names:
    """Dense ids for names, with a numba-readable hash table of their UTF-8 bytes."""

    def __init__(self, capacity: int = 1024) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
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
        self.ids[name] = i
        self.names.append(name)
        if 2 * len(self.names) > len(self.keys):
            self._rehash()
        self._put(fnv1a(name), i)
        return i

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
        old = [(n, self.ids[n]) for n in self.names[:-1]]
        self.keys = np.zeros(len(self.keys) * 2, np.uint64)
        self.vals = np.full(len(self.keys), -1, np.int64)
        for n, i in old:
            self._put(fnv1a(n), i)

    def lookup(self, names: list[str]) -> Ints:
        """Ids for a list of names, interning the new ones."""
        out = np.fromiter(map(self.ids.get, names, repeat(-1, len(names))), np.int64, len(names))
        if (out < 0).any():
            for k in np.flatnonzero(out < 0).tolist():
                out[k] = self.intern(names[k])
        return out
