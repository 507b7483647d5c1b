"""A numba scanner for the common shape of NDJSON samples: no Python object per sample.

`{"stream": "room-1", "metric": "viewers", "ts": 1767225600.5, "value": 42, "labels": {...}}`
in any key order, with any whitespace. Names are hashed (FNV-1a) straight from the bytes and
found in the table's interning (ingest/names.py); numbers are converted exactly (Clinger's fast
path: an integer mantissa below 2^53 scaled by an exact power of ten, correctly rounded by one IEEE
multiplication or division) or not at all. Anything unusual - escapes, a string `ts`, NaN
literals, exponents, long mantissas, unknown keys, oversize labels, broken JSON - marks the line
SLOW, and the exact msgspec/json parser (ingest/parse.py) reads it and explains what is wrong.
The fast path never decides a rejection, so both paths give every sample the same verdict.

One monolithic kernel on purpose: calls between jitted functions that pass arrays cost tens of
nanoseconds each (reference counting), which made a tidier version of this scanner 8x slower.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from streamwatch.ingest.names import Names

__all__ = ["FAST", "SLOW", "BLANK", "Scan", "scan"]

FAST, SLOW, BLANK = 0, 1, 2
_POW10 = np.array([10.0 ** k for k in range(23)])


@nb.njit(cache=True, nogil=True)
def _scan(buf, pow10, s_keys, s_vals, m_keys, m_vals, max_labels, max_label_len,
          status, line_a, line_b, sid_o, mid_o, ts_o, val_o, lab_a, lab_b, ss, se, ms, me,
          sh_o, mh_o):
    n = 0
    a = 0
    end = len(buf)
    s_mask = len(s_keys) - 1
    m_mask = len(m_keys) - 1
    while a < end:
        b = end                 # parse up to the newline, found on the way (not in a pre-pass)
        line_a[n] = a
        lab_a[n] = -1
        lab_b[n] = -1
        st = FAST
        have = 0
        i = a
        while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
            i += 1
        if i == b or buf[i] == 10:
            st = BLANK
        elif buf[i] != 123:
            st = SLOW
        else:
            i += 1
            while True:
                while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
                    i += 1
                if i >= b or buf[i] != 34:
                    st = SLOW
                    break
                ka = i + 1
                i = ka
                while i < b and buf[i] != 34 and buf[i] != 92 and buf[i] >= 32:
                    i += 1
                if i >= b or buf[i] != 34:
                    st = SLOW
                    break
                kl = i - ka
                kind = 0
                if kl == 6 and buf[ka] == 115 and buf[ka + 1] == 116 and buf[ka + 5] == 109:
                    kind = 1                                   # "stream"
                elif kl == 6 and buf[ka] == 109 and buf[ka + 1] == 101 and buf[ka + 5] == 99:
                    kind = 2                                   # "metric"
                elif kl == 2 and buf[ka] == 116 and buf[ka + 1] == 115:
                    kind = 3                                   # "ts"
                elif kl == 5 and buf[ka] == 118 and buf[ka + 1] == 97 and buf[ka + 4] == 101:
                    kind = 4                                   # "value"
                elif kl == 6 and buf[ka] == 108 and buf[ka + 1] == 97 and buf[ka + 5] == 115:
                    kind = 5                                   # "labels"
                i += 1
                while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
                    i += 1
                if i >= b or buf[i] != 58:
                    st = SLOW
                    break
                i += 1
                while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
                    i += 1
                if i >= b or kind == 0:
                    st = SLOW
                    break
                if kind <= 2:
                    if buf[i] != 34:
                        st = SLOW
                        break
                    i += 1
                    sa = i
                    h = np.uint64(14695981039346656037)
                    while i < b and buf[i] != 34 and buf[i] != 92 and buf[i] >= 32:
                        h = (h ^ np.uint64(buf[i])) * np.uint64(1099511628211)
                        i += 1
                    if i >= b or buf[i] != 34 or i == sa:
                        st = SLOW
                        break
                    if h == np.uint64(0):
                        h = np.uint64(1)
                    if kind == 1:
                        keys, vals, mask = s_keys, s_vals, s_mask
                    else:
                        keys, vals, mask = m_keys, m_vals, m_mask
                    j = np.int64(h & np.uint64(mask))
                    found = -1
                    while True:
                        kk = keys[j]
                        if kk == h:
                            found = vals[j]
                            break
                        if kk == np.uint64(0):
                            break
                        j = (j + 1) & mask
                    if kind == 1:
                        sid_o[n] = found
                        sh_o[n] = h
                        ss[n] = sa
                        se[n] = i
                        have |= 1
                    else:
                        mid_o[n] = found
                        mh_o[n] = h
                        ms[n] = sa
                        me[n] = i
                        have |= 2
                    i += 1
                elif kind <= 4:
                    neg = False
                    if buf[i] == 45:
                        neg = True
                        i += 1
                    if i >= b or buf[i] < 48 or buf[i] > 57 or (
                            buf[i] == 48 and i + 1 < b and 48 <= buf[i + 1] <= 57):
                        st = SLOW
                        break
                    m = 0
                    digits = 0
                    e10 = 0
                    ok = True
                    while i < b and 48 <= buf[i] <= 57:
                        if digits < 18:
                            m = m * 10 + np.int64(buf[i] - 48)
                            if m:
                                digits += 1
                        else:
                            ok = False
                        i += 1
                    if i < b and buf[i] == 46:
                        i += 1
                        if i >= b or buf[i] < 48 or buf[i] > 57:
                            ok = False
                        while i < b and 48 <= buf[i] <= 57:
                            if digits < 18:
                                m = m * 10 + np.int64(buf[i] - 48)
                                if m:
                                    digits += 1
                                e10 -= 1
                            elif buf[i] != 48:
                                ok = False
                            i += 1
                    if i < b and (buf[i] == 101 or buf[i] == 69):
                        ok = False                              # exponents: the exact path
                    if not ok or m >= 9007199254740992 or e10 < -22:
                        st = SLOW
                        break
                    v = m / pow10[-e10] if e10 < 0 else m * 1.0
                    if neg:
                        v = -v
                    if kind == 3:
                        ts_o[n] = v
                        have |= 4
                    else:
                        val_o[n] = v
                        have |= 8
                else:                                           # labels: null or {str: str}
                    if buf[i] == 110:
                        if i + 4 > b or buf[i + 1] != 117 or buf[i + 2] != 108 or buf[i + 3] != 108:
                            st = SLOW
                            break
                        i += 4
                    elif buf[i] == 123:
                        start = i
                        i += 1
                        pairs = 0
                        while True:
                            while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
                                i += 1
                            if i < b and buf[i] == 125 and pairs == 0:
                                i += 1
                                break
                            bad = False
                            for part in range(2):
                                if part == 1:
                                    while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
                                        i += 1
                                    if i >= b or buf[i] != 58:
                                        bad = True
                                        break
                                    i += 1
                                    while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
                                        i += 1
                                if i >= b or buf[i] != 34:
                                    bad = True
                                    break
                                i += 1
                                la = i
                                while i < b and buf[i] != 34 and buf[i] != 92 and buf[i] >= 32:
                                    i += 1
                                if i >= b or buf[i] != 34 or i - la > max_label_len:
                                    bad = True
                                    break
                                i += 1
                            if bad:
                                st = SLOW
                                break
                            pairs += 1
                            while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
                                i += 1
                            if i < b and buf[i] == 44:
                                i += 1
                                continue
                            if i < b and buf[i] == 125:
                                i += 1
                                break
                            st = SLOW
                            break
                        if st != FAST:
                            break
                        if pairs > max_labels:
                            st = SLOW
                            break
                        lab_a[n] = start              # {} stays {}, as the exact parser has it
                        lab_b[n] = i
                    else:
                        st = SLOW
                        break
                while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
                    i += 1
                if i < b and buf[i] == 44:
                    i += 1
                    continue
                if i < b and buf[i] == 125:
                    i += 1
                    while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
                        i += 1
                    if i < b and buf[i] != 10:
                        st = SLOW
                    break
                st = SLOW
                break
            if st == FAST and have != 15:
                st = SLOW
        while i < end and buf[i] != 10:     # the line's end (rest of a line judged SLOW)
            i += 1
        if st == BLANK and i < end and buf[i] != 10:
            st = SLOW
        line_b[n] = i
        status[n] = st
        n += 1
        a = i + 1
    return n


class Scan:
    """Per-line results of one scan (arrays of length `n`); ids -1 = unknown name, -2 = ambiguous."""
    __slots__ = ("n", "status", "line_a", "line_b", "sid", "mid", "ts", "value", "lab_a", "lab_b",
                 "ss", "se", "ms", "me", "sh", "mh")

    def __init__(self, cap: int) -> None:
        self.n = 0
        self.status = np.empty(cap, np.int64)
        self.line_a = np.empty(cap, np.int64)
        self.line_b = np.empty(cap, np.int64)
        self.sid = np.empty(cap, np.int64)    # meaningful only where status == FAST
        self.mid = np.empty(cap, np.int64)
        self.ts = np.empty(cap)
        self.value = np.empty(cap)
        self.lab_a = np.empty(cap, np.int64)
        self.lab_b = np.empty(cap, np.int64)
        self.ss = np.empty(cap, np.int64)
        self.se = np.empty(cap, np.int64)
        self.ms = np.empty(cap, np.int64)
        self.me = np.empty(cap, np.int64)
        self.sh = np.empty(cap, np.uint64)    # FNV-1a of the names' bytes
        self.mh = np.empty(cap, np.uint64)


@nb.njit(cache=True, nogil=True)
def _count_lines(buf):  # type: ignore[no-untyped-def]
    n = 0
    for c in buf:
        if c == 10:
            n += 1
    return n


def scan(buf: np.ndarray, streams: Names, metrics: Names, max_labels: int,
         max_label_len: int) -> Scan:
    """Scan `buf` (uint8 array of whole lines, the last one may lack its newline)."""
    res = Scan(int(_count_lines(buf)) + 1)
    res.n = _scan(buf, _POW10, streams.keys, streams.vals, metrics.keys, metrics.vals,
                  max_labels, max_label_len, res.status, res.line_a, res.line_b, res.sid,
                  res.mid, res.ts, res.value, res.lab_a, res.lab_b, res.ss, res.se, res.ms,
                  res.me, res.sh, res.mh)
    for k in Scan.__slots__[1:]:
        setattr(res, k, getattr(res, k)[: res.n])
    return res
