"""The Numenta Anomaly Benchmark's scoring rules, re-implemented (numpy, no pandas, no NAB code).

Why a re-implementation: the official scorer (numenta/NAB, `nab/sweeper.py` + `nab/optimizer.py` +
`nab/runner.py`) is Python 2-era, pandas-heavy and AGPL; we only need its arithmetic, written
once, tested on hand-made cases, and fast enough to sweep thresholds over ~370k points.

The rules, as the official scorer applies them:

* **Probation.** The first `min(floor(0.15 * n), 0.15 * 5000)` rows of a file are not scored
  (neither detections nor windows' points there count).
* **Windows.** Each labelled window `[t1, t2]` covers the rows whose timestamps lie in it. A window
  is scored once: by its *earliest-in-window, best* detection. A detection at row `i` of a window
  whose last row is `R` and width `w` rows sits at relative position `-(R - i + 1) / w` (-1 = the
  first row, ~0 = the last) and earns `tp * S(pos) / S(-1)` where `S(y) = 2 / (1 + e^(5y)) - 1`
  is the scaled sigmoid (so the first row earns exactly `tp`). A window with no detection costs
  `-fn`. (Technically: the window's part is the max over its detected rows' values, starting from
  `-fn`.)
* **False positives.** Every detected row outside all windows costs `fp * S(pos)` (a negative
  number): `pos = |R_prev - i| / (w_prev - 1)` measured from the end of the closest *preceding*
  window (cheap just after a window, `-fp` beyond ~1 window width), and `S = -1` exactly
  (`pos = 3`) when no window precedes it. Every such row counts, not only the first of a run.
* **Detections** are rows whose anomaly score is `>= threshold`.
* **Threshold sweep.** One threshold for the whole corpus: the one maximising the *summed* raw
  score over all files (NAB's optimizer sorts every scorable row of every file by score and
  evaluates each distinct score as a threshold, plus 1.1 = "detect nothing").
* **Normalisation.** `100 * (raw - null) / (perfect - null)` where `perfect = tp * (number of
  windows)` and `null` is the raw score of the null detector (it never detects, so every scorable
  window is a false negative: `-fn * windows with a scorable row`).

Profiles (config/profiles.json): standard tp 1, fp 0.11, fn 1; reward_low_FP_rate fp 0.22;
reward_low_FN_rate fn 2 (tn is unused by the scorer).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

__all__ = [
    "PROFILES", "Profile", "PreparedFile", "SweepResult", "scaled_sigmoid", "probation_length",
    "prepare_file", "sweep", "score_at", "load_windows", "load_profiles", "parse_timestamps",
    "windows_to_rows",
]


@dataclass(frozen=True, slots=True)
class Profile:
    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}


def scaled_sigmoid(pos: np.ndarray | float) -> np.ndarray:
    """NAB's S(y) = 2*sigmoid(-5y) - 1, with S = -1 from y >= 3 on (far-away false positives)."""
    y = np.asarray(pos, dtype=np.float64)
    out = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y >= 3.0, -1.0, out)


MAX_TP = float(scaled_sigmoid(-1.0))


def probation_length(n: int, percent: float = 0.15) -> int:
    """Rows not scored at the start of a file: 15 % of it, capped at 750 (15 % of 5000)."""
    return int(min(math.floor(percent * n), percent * 5000))


@dataclass(slots=True)
class PreparedFile:
    """Everything about one file that does not depend on the detector's scores.

    `window[i]` is the window id of row i (-1 outside windows, -2 probationary);
    `tp_value[i]` is the unweighted window value S(pos)/S(-1) of a detection at row i;
    `fp_value[i]` the unweighted false-positive value S(pos) (<= 0) of a detection at row i.
    """
    name: str
    n: int
    window: np.ndarray
    tp_value: np.ndarray
    fp_value: np.ndarray
    n_windows: int               # labelled windows (for "perfect")
    scorable_windows: np.ndarray  # ids of windows with at least one scored row (for "null")


def prepare_file(name: str, n: int, windows: list[tuple[int, int]],
                 probation_percent: float = 0.15) -> PreparedFile:
    """Label rows of a file of n rows whose windows are given as inclusive row-index pairs."""
    win = np.full(n, -1, dtype=np.int64)
    tp_value = np.zeros(n)
    fp_value = np.full(n, -1.0)
    idx = np.arange(n)
    prev_right = -1
    prev_width = 0
    order = sorted(windows)
    for w_id, (a, b) in enumerate(order):
        width = float(b - a + 1)
        win[a:b + 1] = w_id
        pos = -(b - idx[a:b + 1] + 1) / width
        tp_value[a:b + 1] = scaled_sigmoid(pos) / MAX_TP
        # rows after the previous window (and before this one) measure from it
        if prev_right >= 0:
            seg = slice(prev_right + 1, a)
            dist = np.abs(prev_right - idx[seg]) / max(prev_width - 1.0, 1e-12)
            fp_value[seg] = scaled_sigmoid(dist)
        prev_right, prev_width = b, width
    if prev_right >= 0:
        seg = slice(prev_right + 1, n)
        dist = np.abs(prev_right - idx[seg]) / max(prev_width - 1.0, 1e-12)
        fp_value[seg] = scaled_sigmoid(dist)
    fp_value[win >= 0] = 0.0
    prob = probation_length(n, probation_percent)
    win[:prob] = -2
    scorable = np.unique(win[win >= 0])
    return PreparedFile(name, n, win, tp_value, fp_value, len(order), scorable)


@dataclass(slots=True)
class SweepResult:
    threshold: float
    raw: float
    null: float
    perfect: float
    per_file: dict[str, float] = field(default_factory=dict)
    counts: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # tp windows, fn, fp rows

    @property
    def normalised(self) -> float:
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


def _null_and_perfect(files: list[PreparedFile], prof: Profile) -> tuple[float, float]:
    null = -prof.fn * sum(len(f.scorable_windows) for f in files)
    perfect = prof.tp * sum(f.n_windows for f in files)
    return null, perfect


def sweep(files: list[PreparedFile], scores: list[np.ndarray], prof: Profile) -> SweepResult:
    """Best corpus-wide threshold and its raw score (NAB's optimizer), with null and perfect."""
    vals, delta = [], []
    for f_i, (f, s) in enumerate(zip(files, scores)):
        keep = f.window != -2
        s = np.asarray(s, dtype=np.float64)[keep]
        win = f.window[keep]
        vals.append(np.column_stack([s, np.full(len(s), f_i), win,
                                     f.tp_value[keep] * prof.tp, f.fp_value[keep] * prof.fp]))
    allv = np.concatenate(vals) if vals else np.zeros((0, 5))
    order = np.argsort(-allv[:, 0], kind="stable")
    allv = allv[order]
    score, file_i, win, tpv, fpv = (allv[:, 0], allv[:, 1].astype(np.int64),
                                    allv[:, 2].astype(np.int64), allv[:, 3], allv[:, 4])
    gain = np.where(win < 0, fpv, 0.0)
    # windows: the part of a window is max(-fn, values of its detected rows so far)
    in_win = np.nonzero(win >= 0)[0]
    key = file_i[in_win] * 1_000_000 + win[in_win]
    by_key = np.argsort(key, kind="stable")       # stable: keeps score order inside a window
    sorted_idx = in_win[by_key]
    sorted_key = key[by_key]
    starts = np.nonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])[0]
    ends = np.r_[starts[1:], len(sorted_key)]
    for a, b in zip(starts, ends):
        rows = sorted_idx[a:b]
        best = np.maximum.accumulate(np.r_[-prof.fn, tpv[rows]])
        gain[rows] += np.diff(best)
    null, perfect = _null_and_perfect(files, prof)
    total = null + np.cumsum(gain)
    # a threshold equal to a score detects every row with that score: evaluate at tie ends
    last_of_tie = np.r_[score[1:] != score[:-1], True] if len(score) else np.zeros(0, bool)
    cand_total = np.r_[null, total[last_of_tie]]
    cand_thr = np.r_[1.1, score[last_of_tie]]
    best_i = int(np.argmax(cand_total))  # first max: the highest threshold reaching it
    res = score_at(files, scores, prof, float(cand_thr[best_i]))
    return res


def score_at(files: list[PreparedFile], scores: list[np.ndarray], prof: Profile,
             threshold: float) -> SweepResult:
    """Raw score of every file at one threshold (what NAB's scoring step reports)."""
    null, perfect = _null_and_perfect(files, prof)
    res = SweepResult(threshold, 0.0, null, perfect)
    for f, s in zip(files, scores):
        det = (np.asarray(s) >= threshold) & (f.window != -2)
        fp_rows = det & (f.window == -1)
        raw = float(np.sum(f.fp_value[fp_rows]) * prof.fp)
        hit = miss = 0
        for w_id in f.scorable_windows:
            rows = det & (f.window == w_id)
            if rows.any():
                raw += float(np.max(f.tp_value[rows])) * prof.tp
                hit += 1
            else:
                raw -= prof.fn
                miss += 1
        res.per_file[f.name] = raw
        res.counts[f.name] = (hit, miss, int(fp_rows.sum()))
        res.raw += raw
    return res


# ---------------------------------------------------------------- files on disk (NAB layout)

def parse_timestamps(texts: list[str]) -> np.ndarray:
    """NAB timestamps ('YYYY-MM-DD HH:MM:SS[.ffffff]') -> datetime64[s]."""
    return np.array([np.datetime64(datetime.fromisoformat(t.strip()), "s") for t in texts])


def load_windows(path: Path) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    """combined_windows.json -> {relative path: [(start, end), ...]} as datetime64[s]."""
    raw = json.loads(Path(path).read_text())
    return {name: [(parse_timestamps([a])[0], parse_timestamps([b])[0]) for a, b in wins]
            for name, wins in raw.items()}


def windows_to_rows(ts: np.ndarray, wins: list[tuple[np.datetime64, np.datetime64]]
                    ) -> list[tuple[int, int]]:
    """Window time limits -> inclusive row ranges (rows whose timestamp lies in the window)."""
    out = []
    for a, b in wins:
        lo = int(np.searchsorted(ts, a, side="left"))
        hi = int(np.searchsorted(ts, b, side="right")) - 1
        if hi >= lo:
            out.append((lo, hi))
    return out


def load_profiles(path: Path) -> dict[str, Profile]:
    """config/profiles.json -> {name: Profile}."""
    raw = json.loads(Path(path).read_text())
    return {name: Profile(tp=p["CostMatrix"]["tpWeight"], fp=p["CostMatrix"]["fpWeight"],
                          fn=p["CostMatrix"]["fnWeight"]) for name, p in raw.items()}
