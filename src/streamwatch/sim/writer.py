"""Write a simulated session to disk: ``samples.ndjson`` (arrival order) and ``labels.json``.

Used by ``streamwatch simulate`` and the benchmarks.  Output is byte-identical for the same
arguments (fixed key order for samples, sorted keys for labels), and each file is written to a
temporary name and renamed, so a reader never sees half a session.
"""
from __future__ import annotations

import os
from pathlib import Path

import orjson

from streamwatch.sim.simulator import Simulator

__all__ = ["write_session"]


def write_session(out_dir: Path, seed: int, rooms: int, minutes: float) -> tuple[int, Path, Path]:
    """Simulate and write one session; returns (number of samples, samples path, labels path)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sim = Simulator(seed, rooms, minutes)
    samples_path = out_dir / "samples.ndjson"
    labels_path = out_dir / "labels.json"
    n = 0
    tmp = samples_path.with_name(samples_path.name + ".tmp")
    with open(tmp, "wb") as f:
        for _, batch in sim._chunks():
            if batch:
                f.write(b"\n".join(map(orjson.dumps, batch)) + b"\n")
                n += len(batch)
    os.replace(tmp, samples_path)
    tmp = labels_path.with_name(labels_path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(sim.labels(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
                    + b"\n")
    os.replace(tmp, labels_path)
    return n, samples_path, labels_path
