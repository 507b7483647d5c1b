"""The one line a human reads in the ops room: what moved, how much, and what it looks like."""
from __future__ import annotations

from streamwatch.assess.correlate import Graded
from streamwatch.assess.signals import Signal

__all__ = ["summarise"]

_LABEL = {
    "stream_outage": "stream outage", "checkout_broken": "checkout failure",
    "platform_throttle": "traffic throttled by the platform", "host_absent": "host absent",
    "complaint_surge": "complaint surge", "bot_traffic": "suspected bot traffic",
    "service_degradation": "service degradation", "unknown": "unexplained anomaly",
}


def _metric(m: str) -> str:
    return m.removesuffix("_total")


def _describe(s: Signal, ts: float) -> str:
    took = max(0, int(round(ts - s.since)))
    if s.metric == "stream":
        return f"no data for {max(0, int(s.observed))} s"
    if s.rule.method == "count" and s.direction == "down":
        drop = (s.observed / s.expected - 1) * 100 if s.expected else -100.0
        return (f"{_metric(s.metric)} {drop:+.0f}% ({s.observed:.0f} vs {s.expected:.0f} "
                f"expected)").replace("-", "−")
    if s.rule.method == "count":
        ratio = s.observed / s.expected if s.expected else float("inf")
        return f"{_metric(s.metric)} ×{ratio:.1f} ({s.observed:.0f} vs {s.expected:.1f} expected)"
    if s.rule.method == "bounds":
        return f"{_metric(s.metric)} {s.observed:.3g}"
    rel = s.relative
    if rel != rel or rel in (float("inf"), float("-inf")):
        return f"{_metric(s.metric)} {s.observed:.3g}"
    if rel < 1:
        return f"{_metric(s.metric)} {(rel - 1) * 100:+.0f}% in {took} s".replace("-", "−")
    return f"{_metric(s.metric)} ×{rel:.1f} in {took} s"


def summarise(stream: str, g: Graded, ts: float) -> str:
    f = g.finding
    parts = ", ".join(_describe(s, ts) for s in sorted(f.signals, key=lambda s: (s.level or 9,
                                                                                 -s.score))[:3])
    what = f.kind.replace("_", " ") if f.type == "normal_event" else _LABEL.get(str(f.type), str(f.type))
    return f"{stream}: {parts} — {what}"
