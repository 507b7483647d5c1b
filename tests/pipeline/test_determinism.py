"""Event time, not batching or wall time, decides: live pushes and replay give the same events."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from streamwatch.config.load import load_config
from streamwatch.ingest.parse import Batch, iter_ndjson_file
from streamwatch.pipeline import Pipeline
from streamwatch.sim import write_session

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    out = tmp_path_factory.mktemp("sim")
    _, samples, _ = write_session(out, 23, 6, 40)
    return Batch.concat(r.batch for r in iter_ndjson_file(samples, now=time.time()))


def _events(batches: list[Batch]) -> list[str]:
    cfg = load_config(REPO / "config", REPO / "detectors")
    p = Pipeline(cfg.rules, cfg.pipeline_settings())
    return [e.model_dump_json() for b in batches for e in p.process(b)]


def _cut(b: Batch, cuts: list[int]) -> list[Batch]:
    out = []
    for a, z in zip(cuts, cuts[1:]):
        out.append(Batch(b.streams[a:z], b.metrics[a:z], b.ts[a:z], b.values[a:z], b.labels[a:z],
                         b.positions[a:z]))
    return out


def test_same_events_however_the_input_is_cut(batch: Batch) -> None:
    whole = _events([batch])
    assert whole, "the session raises alerts"
    rng = np.random.default_rng(5)
    n = len(batch)
    cuts = sorted({0, n, *rng.integers(1, n, 400).tolist()})   # pushes of ~1-2000 samples
    assert _events(_cut(batch, cuts)) == whole


def test_one_sample_at_a_time_gives_the_same_events(batch: Batch) -> None:
    n = min(len(batch), 20000)
    head = _cut(batch, [0, n])[0]
    assert _events(_cut(head, list(range(n + 1)))) == _events([head])
