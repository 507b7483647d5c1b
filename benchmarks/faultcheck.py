"""Ground truth and the fault table of benchmarks/faults.py (with faultkit.py, its harness).

`replay` runs `streamwatch replay` on exactly the samples a service acknowledged: detection is
deterministic on event time, so a service that lost nothing holds the same alert events, with
the same ids and times. `compare` matches events by content (event time, stream, metric, status,
type) so that one lost event counts once rather than shifting every id after it, and says
separately whether the ids are identical too. `Row` is one line of the table; `Ctx` what every
scenario gets; the shared steps (push, wait for the store, read the counters) are here as well.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultkit import Api, child_env, log, wait

__all__ = ["Row", "Ctx", "replay", "compare", "Compared", "stored_events",
           "duplicate_incidents", "split", "settle", "processed", "events_lost", "lost_text",
           "push_all", "table", "DB"]

DB = "streamwatch.db"


@dataclass
class Row:
    """One fault's line of the table (faults.py's docstring defines each column)."""
    fault: str
    how: str
    sent: int | None = None
    acked: int | None = None
    processed: int | None = None
    expected: int | None = None
    stored: int | None = None
    delivered: int | None = None
    lost: str = "0"
    duplicates: int = 0
    note: str = ""


@dataclass
class Ctx:
    args: argparse.Namespace
    workdir: Path
    lines: list[bytes]                   # the session, one sample per line
    ts: list[tuple[str, float]]          # (stream, ts) per line
    bad_inputs: set[str]
    fresh: set[str] = field(default_factory=set)

    def data_dir(self, name: str) -> Path:
        """The scenario's data dir, emptied on first use in this run (a kept --workdir)."""
        d = self.workdir / f"data-{name}"
        if name not in self.fresh:
            self.fresh.add(name)
            shutil.rmtree(d, ignore_errors=True)
        return d


# -- ground truth and comparison --------------------------------------------------------------
def replay(workdir: Path, lines: list[bytes]) -> list[dict[str, Any]]:
    """`streamwatch replay` of exactly these samples, in this order (cached by content)."""
    data = b"\n".join(lines) + b"\n"
    key = hashlib.sha256(data).hexdigest()[:16]
    src, out = workdir / f"replay-{key}.ndjson", workdir / f"replay-{key}.alerts.ndjson"
    if not out.exists():
        src.write_bytes(data)
        r = subprocess.run([sys.executable, "-m", "streamwatch", "replay", str(src), "--output",
                            str(out)], env=child_env(None), capture_output=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"replay failed: {r.stderr.decode(errors='replace')[-1500:]}")
    return [json.loads(x) for x in out.read_bytes().splitlines() if x.strip()]


def _key(e: dict[str, Any]) -> tuple[Any, ...]:
    return (round(float(e["ts"]), 3), e["stream"], e["metric"], e["status"], e["incident_type"])


@dataclass
class Compared:
    """Expected (replay) vs got (the service): by content, and whether ids/ts are identical."""
    missing: list[dict[str, Any]] = field(default_factory=list)   # expected, not got: lost
    extra: list[dict[str, Any]] = field(default_factory=list)     # got, not expected
    same_ids: bool = True
    duplicate_ids: int = 0

    @property
    def lost(self) -> int:
        return len(self.missing)


def compare(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> Compared:
    want, have = Counter(map(_key, expected)), Counter(map(_key, got))
    ids = [e["id"] for e in got]
    c = Compared(duplicate_ids=len(ids) - len(set(ids)))
    for e in expected:
        if have[_key(e)] > 0:
            have[_key(e)] -= 1
        else:
            c.missing.append(e)
    for e in got:
        if want[_key(e)] > 0:
            want[_key(e)] -= 1
        else:
            c.extra.append(e)
    c.same_ids = ([(e["id"], _key(e)) for e in expected]
                  == [(e["id"], _key(e)) for e in sorted(got, key=lambda e: e["id"])])
    return c


def stored_events(db: Path) -> list[dict[str, Any]]:
    """The alert events in a store file, oldest first (read-only; WAL lets it run beside)."""
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
        return [json.loads(r[0]) for r in c.execute("SELECT doc FROM events ORDER BY id")]


def duplicate_incidents(incidents: list[dict[str, Any]]) -> int:
    """Incidents beyond the first with the same id, or the same (stream, type, started_at)."""
    ids = Counter(i["id"] for i in incidents)
    same = Counter((i["stream"], i["type"], i["started_at"]) for i in incidents)
    return sum(n - 1 for n in ids.values()) + sum(n - 1 for n in same.values())


# -- shared steps of the scenarios -----------------------------------------------------------------------------
def split(lines: list[bytes], size: int) -> list[list[bytes]]:
    return [lines[i:i + size] for i in range(0, len(lines), size)]


def settle(api: Api, db: Path, n: int, timeout: float = 15.0) -> None:
    """Queue drained and at least `n` events in the store (or the deadline)."""
    wait(api.drained, timeout, "the queue to drain")
    wait(lambda: len(stored_events(db)) >= n, timeout, f"{n} events in the store")


def processed(api: Api) -> int:
    m = api.metrics()
    return int(m.get("streamwatch_samples_ingested_total", 0)
               - m.get("streamwatch_queue_depth_samples", 0))


def events_lost(expected: list[dict[str, Any]], stored: list[dict[str, Any]],
                delivered: list[dict[str, Any]]) -> tuple[int, int, bool]:
    """(expected events missing from the store or the delivery, duplicate ids, ids identical)."""
    s, d = compare(expected, stored), compare(expected, delivered)
    missing = {e["id"] for e in s.missing} | {e["id"] for e in d.missing}
    return len(missing), s.duplicate_ids + d.duplicate_ids, s.same_ids and d.same_ids


def lost_text(samples: int, events: int) -> str:
    if not samples and not events:
        return "0"
    return ", ".join(x for x in (f"{samples} samples" if samples else "",
                                 f"{events} events" if events else "") if x)


def push_all(api: Api, chunks: list[list[bytes]]) -> list[bytes]:
    """Push every chunk; the lines acknowledged (2xx, all accepted), in order."""
    acked: list[bytes] = []
    for c in chunks:
        status, body = api.push(c)
        if status // 100 == 2 and body.get("accepted") == len(c):
            acked += c
        else:
            log(f"push answered {status}: {str(body)[:200]}")
    return acked


def table(rows: list[Row]) -> str:
    head = ["fault", "injected how", "samples sent / acked / processed",
            "events expected / stored / delivered", "lost", "duplicates"]

    def n(v: int | None) -> str:
        return "—" if v is None else f"{v:,}"
    body = [[r.fault, r.how, f"{n(r.sent)} / {n(r.acked)} / {n(r.processed)}",
             f"{n(r.expected)} / {n(r.stored)} / {n(r.delivered)}", r.lost, str(r.duplicates)]
            for r in rows]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in body]
    out += ["", "notes:"] + [f"- {r.fault}: {r.note}" for r in rows]
    return "\n".join(out)
