"""The one contract every detection method obeys (river's, vectorised over many series).

A detector owns arrays of per-series state indexed by *row* (its own row space, grown by
`resize`). The pipeline hands it micro-batches of samples already in event-time order per row:

* `x`  is the observation: a gauge's value, or for a counter the increment over the interval;
* `dt` is the interval in seconds since the previous observation of that row (0 for the first).
* `role` (only for methods that relate two metrics, e.g. a rule with `per = ...`) says which
  of the two each sample is: 0 the rule's own metric, 1 the other one.

`update_many` walks the batch in order and, for each sample, first *scores* it against the
state learned so far and then *learns* from it - except that a sample scored anomalous does not
move the baseline (river's `protect_anomaly_detector`), so a long incident is not learned as the
new normal before it is reported. Doing both in one pass keeps a row that appears several times in
one batch exact: sample i is always scored with what samples < i taught.

`Scores.score` is a continuous anomaly score in [0, 1] (0 during warm-up); `Scores.level` is the
severity the rule's thresholds assign to that one sample (0 = normal, 1..4), before any minimum
duration is applied (that is `detect/debounce.py`'s job, shared by all methods).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel

from streamwatch.types import Floats, Ints

__all__ = ["Scores", "Detector", "empty_scores"]


@dataclass(frozen=True, slots=True)
class Scores:
    score: Floats      # [0, 1], continuous
    expected: Floats   # the value the detector expected (same unit as x, or a rate); NaN if none
    level: Ints        # 0 normal, 1..4 severity of this sample alone
    observed: Floats | None = None  # what the detector compared (e.g. its fast level); None = x


def empty_scores(n: int) -> Scores:
    return Scores(np.zeros(n), np.full(n, np.nan), np.zeros(n, dtype=np.int64))


@runtime_checkable
class Detector(Protocol):
    method: ClassVar[str]               # the `method = "..."` value in detectors/*.toml
    Params: ClassVar[type[BaseModel]]   # hyperparameters only

    def resize(self, n_rows: int) -> None:
        """Make room for rows 0..n_rows-1; existing rows keep their state."""

    def update_many(self, rows: Ints, ts: Floats, x: Floats, dt: Floats) -> Scores:
        """Score then learn each sample in order (see module docstring)."""

    def reset(self, rows: Ints) -> None:
        """Forget what these rows learned (stream restarted)."""
