"""`streamwatch demo` (until the live service lands): a simulated session, replayed, as a table.

Everything is embedded: the simulator makes the session, the packaged defaults configure the
pipeline, and the incidents it raised are printed beside the simulator's ground truth.
"""
from __future__ import annotations

import io
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from streamwatch.replay import replay_ndjson
from streamwatch.sim import write_session

__all__ = ["run_demo"]

_COLOUR = {1: "bold red", 2: "dark_orange", 3: "yellow", 4: "dim"}


def _hms(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S")


def run_demo(workdir: Path, seed: int, rooms: int, minutes: float) -> None:
    console = Console(width=None if sys.stdout.isatty() else 150)  # piped: don't wrap at 80
    with console.status(f"simulating {rooms} rooms x {minutes:g} min (seed {seed})"):
        n, samples, labels_path = write_session(workdir, seed, rooms, minutes)
    buf = io.BytesIO()
    with console.status(f"replaying {n:,} samples through the pipeline"):
        summary = replay_ndjson(samples, buf)
    events = [orjson.loads(line) for line in buf.getvalue().splitlines()]
    labels = json.loads(labels_path.read_text())
    table = Table(title="Incidents raised (first firing event of each; level 4 notices hidden)")
    for col in ("time", "level", "team", "type", "summary"):
        table.add_column(col)
    seen: set[str] = set()
    notices = 0
    for e in events:
        if e["status"] != "firing" or e["incident_id"] in seen:
            continue
        seen.add(e["incident_id"])
        if e["level"] == 4:
            notices += 1
            continue
        table.add_row(_hms(e["ts"]), f"[{_COLOUR[e['level']]}]L{e['level']}[/]", e["team"],
                      e["incident_type"], e["summary"])
    console.print(table)
    truth = Table(title="What the simulator actually staged")
    for col in ("start", "level", "team", "type", "stream"):
        truth.add_column(col)
    for inc in sorted(labels["incidents"], key=lambda i: i["start_ts"]):
        truth.add_row(_hms(inc["start_ts"]), f"L{inc['level']}", inc["team"], inc["type"],
                      inc["stream"])
    console.print(truth)
    console.print(f"{notices} level-4 notices (flash sales, lotteries, ramp-ups ...) not shown.")
    console.print(summary.line())
