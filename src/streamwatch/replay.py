"""Replay: recorded samples through the very pipeline the live service runs, as fast as possible.

NDJSON samples stream through in chunks (memory stays flat for any file size); a NAB-layout CSV
(`timestamp,value`) is one series of the generic profile, and `--scores` writes its anomaly score
for every input row. Event time drives everything, so the output is byte-identical run to run.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import orjson

from streamwatch.config.load import Config, load_config
from streamwatch.events import AlertEvent
from streamwatch.exceptions import InputError
from streamwatch.ingest import csvfile  # noqa: F401 (helper may still be writing it)
from streamwatch.ingest.parse import Batch, Limits, iter_ndjson_file
from streamwatch.pipeline import Pipeline

__all__ = ["ReplaySummary", "replay_ndjson", "replay_csv", "encode_event"]


@dataclass(slots=True)
class ReplaySummary:
    samples: int = 0
    accepted: int = 0
    rejected: int = 0
    alerts: int = 0
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        why = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items()))
        return (f"replayed {self.samples:,} samples ({self.accepted:,} accepted, {self.rejected:,} "
                f"rejected{': ' + why if why else ''}; {self.duplicates:,} duplicates, "
                f"{self.late:,} late dropped) -> {self.alerts:,} alert events in "
                f"{self.seconds:.2f} s ({self.rate:,.0f} samples/s)")


def encode_event(e: AlertEvent) -> bytes:
    return orjson.dumps(e.model_dump()) + b"\n"


def _limits(cfg: Config) -> Limits:
    i = cfg.service.ingest
    return Limits(max_labels=i.max_labels, max_label_len=i.max_label_len,
                  future_skew_s=i.future_skew)


def replay_ndjson(input_path: Path, out: BinaryIO | None, *, config: Config | None = None,
                  progress: bool = False) -> ReplaySummary:
    cfg = config or load_config()
    pipeline = Pipeline(cfg.rules, cfg.pipeline_settings())
    summary = ReplaySummary()
    size = Path(input_path).stat().st_size
    bar = _Progress(size) if progress else None
    start = time.perf_counter()
    write = out.write if out is not None else None
    for res in iter_ndjson_file(Path(input_path), now=time.time(), limits=_limits(cfg),
                                parse=pipeline.parser.parse_ndjson):
        batch = res.batch
        summary.accepted += len(batch)
        summary.rejected += len(res.rejections)
        for rej in res.rejections:
            summary.reasons[str(rej.reason)] += 1
            if len(summary.first_errors) < 5:
                summary.first_errors.append(
                    f"{input_path}:{rej.position}: {rej.field or 'line'}: {rej.reason}: {rej.detail}")
        events = pipeline.process(batch)
        summary.alerts += len(events)
        if write is not None and events:
            write(b"".join(encode_event(e) for e in events))
        if bar:
            bar.update(res.bytes_read)
    summary.seconds = time.perf_counter() - start
    summary.samples = summary.accepted + summary.rejected
    summary.duplicates = pipeline.stats.duplicates
    summary.late = pipeline.stats.late
    if bar:
        bar.close()
    return summary


def replay_csv(input_path: Path, out: BinaryIO | None, *, scores_path: Path | None = None,
               config: Config | None = None) -> ReplaySummary:
    cfg = config or load_config()
    series = csvfile.read_timestamp_value_csv(Path(input_path))
    pipeline = Pipeline(cfg.rules, cfg.pipeline_settings())
    pipeline.detection.want_scores = True
    n = len(series.values)
    start = time.perf_counter()
    batch = Batch(["csv"] * n, [Path(input_path).stem] * n, series.ts, series.values,
                  [None] * n, np.arange(n, dtype=np.int64))
    events = pipeline.process(batch)
    scores = np.nan_to_num(pipeline.last_scores, nan=0.0)
    summary = ReplaySummary(samples=n, accepted=n, alerts=len(events),
                            seconds=time.perf_counter() - start)
    if out is not None and events:
        out.write(b"".join(encode_event(e) for e in events))
    if scores_path is not None:
        with open(scores_path, "w", encoding="utf-8", newline="\n") as f:
            f.write("timestamp,value,anomaly_score\n")
            for stamp, v, s in zip(series.timestamps, series.values.tolist(), scores.tolist()):
                # full precision: NAB's threshold sweep separates scores near 1 (0.9999997 ...)
                f.write(f"{stamp},{v!r},{min(1.0, max(0.0, s))!r}\n")
    return summary


class _Progress:
    """A progress bar on stderr for large inputs (only when stderr is a terminal)."""

    def __init__(self, total: int) -> None:
        self.enabled = sys.stderr.isatty() and total > (8 << 20)
        if self.enabled:
            from rich.progress import (BarColumn, DownloadColumn, Progress,
                                       TimeRemainingColumn, TransferSpeedColumn)
            self._p = Progress("replay", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                               TimeRemainingColumn(), transient=True)
            self._task = self._p.add_task("replay", total=total)
            self._p.start()

    def update(self, done: int) -> None:
        if self.enabled:
            self._p.update(self._task, completed=done)

    def close(self) -> None:
        if self.enabled:
            self._p.stop()


def ensure_input(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected an NDJSON or CSV file")
