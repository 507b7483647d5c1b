"""The built-in livestream simulator: rooms, shared services, incidents, and their ground truth.

Used by tests, the demo (a live source, pulled tick by tick) and quality benchmarks.  See
``Simulator`` for the API and ``labels.py`` for the ground-truth format.
"""
from __future__ import annotations

from streamwatch.sim.simulator import Simulator
from streamwatch.sim.writer import write_session

__all__ = ["Simulator", "write_session"]
