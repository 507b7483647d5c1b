"""Samples that open an incident and leave it open: room-a's stream collapses 20 minutes in and
the data stops while it is still down (other rooms normal). Shared by the store and action
tests."""
from __future__ import annotations

import orjson

from tests.pipeline.scenario import Effect, Room, samples

__all__ = ["AT", "outage_chunks", "NDJSON"]

AT = 20 * 60.0
NDJSON = {"Content-Type": "application/x-ndjson"}


def _outage(start: float, end: float) -> list[Effect]:
    return [Effect("bitrate_kbps", start, end, 0.1), Effect("fps", start, end, 0.2)]


def outage_chunks(minutes: float = 23.0, chunk: int = 4000, *, earlier: bool = False
                  ) -> list[bytes]:
    """NDJSON bodies of the scenario up to `minutes` (room-a's outage lasts to the end);
    `earlier`: room-b has a short outage before (more events: firing, resolved)."""
    b_effects = _outage(AT - 360, AT - 120) if earlier else []
    b = samples([Room("room-a", minutes=minutes, effects=_outage(AT, AT + 3600)),
                 Room("room-b", minutes=minutes, effects=b_effects),
                 Room("room-c", minutes=minutes)])
    lines = [orjson.dumps({"stream": s, "metric": m, "ts": t, "value": v})
             for s, m, t, v in zip(b.streams, b.metrics, b.ts.tolist(), b.values.tolist())]
    return [b"\n".join(lines[i:i + chunk]) for i in range(0, len(lines), chunk)]
