"""Cross-metric incident signatures of DOMAIN.md, and the first actions the rules name.

Signatures are tried most specific first; each one *explains* the signals it used, and a later
signature only sees what is left. A stream outage drops viewers, comments and clicks, but it is one
stream outage, not also a host in trouble. Signals are keyed `metric:direction`; `stream:silent`
is the absence signal (a room whose every collector stopped while on air).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from streamwatch.assess.signals import Signal
from streamwatch.types import IncidentType

__all__ = ["Finding", "match_signatures", "RUNBOOK", "STREAM_HEALTH"]

T = IncidentType

STREAM_HEALTH = {"bitrate_kbps:down", "fps:down", "dropped_frames_ratio:up", "rebuffer_ratio:up",
                 "stream:silent"}
# what a broken stream drags down with it
_OUTAGE_ECHOES = {"viewers:down", "entries_total:down", "comments_total:down", "likes_total:down",
                  "shares_total:down", "follows_total:down", "product_clicks_total:down",
                  "orders_total:down", "gmv_total:down"}
_SERVICE = {"error_ratio:up", "latency_p99_ms:up", "cpu_utilization:up"}

RUNBOOK = {
    T.STREAM_OUTAGE: "Switch to the backup network or push server; have the host explain and "
                     "apologise once the picture is back.",
    T.CHECKOUT_BROKEN: "Check the payment/order service and its error rate; tell viewers checkout "
                       "is being fixed; pause flash sales until orders flow again.",
    T.PLATFORM_THROTTLE: "Check the platform's notices and the room's content for violations; "
                         "consider paid traffic or adjusting the programme.",
    T.HOST_ABSENT: "Bring in the substitute host or change the programme.",
    T.COMPLAINT_SURGE: "Customer service answers with care and records details; after-sales "
                       "arranges returns; consider pausing the product.",
    T.BOT_TRAFFIC: "Check traffic sources; do not act on the inflated numbers; report to the "
                   "platform if it persists.",
    T.SERVICE_DEGRADATION: "Check the service's CPU, latency and error dashboards; scale out or "
                           "fail over before checkout is hit.",
}


@dataclass(slots=True)
class Finding:
    type: IncidentType
    signals: list[Signal]
    kind: str = ""                    # e.g. "flash_sale" for normal events, "silent", "stopped"
    level_hint: int = 0               # a raw level suggested by the signals (0: use the type's)
    notes: dict[str, float] = field(default_factory=dict)

    @property
    def primary(self) -> Signal:
        return min(self.signals, key=lambda s: (s.level or 9, -s.score))


def _take(pool: dict[str, Signal], keys: set[str]) -> list[Signal]:
    return [pool.pop(k) for k in sorted(keys) if k in pool]


def match_signatures(signals: dict[str, Signal], is_service: bool) -> tuple[list[Finding],
                                                                            dict[str, Signal]]:
    """Incident findings, and the signals no signature explained (left for normal.py)."""
    pool = dict(signals)
    found: list[Finding] = []
    if is_service:
        svc = _take(pool, _SERVICE)
        if svc:
            errors = [s for s in svc if s.metric == "error_ratio"]
            hint = min(s.level for s in errors) if errors else 3
            found.append(Finding(T.SERVICE_DEGRADATION, svc, kind="errors" if errors else "load",
                                 level_hint=hint))
        return found, pool
    health = set(pool) & STREAM_HEALTH
    if health:
        sig = _take(pool, health | (set(pool) & _OUTAGE_ECHOES))
        kind = "silent" if "stream:silent" in health else "stream_health"
        found.append(Finding(T.STREAM_OUTAGE, sig, kind=kind))
    if "orders_total:down" in pool and "product_clicks_total:down" not in pool:
        found.append(Finding(T.CHECKOUT_BROKEN, _take(pool, {"orders_total:down", "gmv_total:down"}),
                             kind="orders_stopped"))
    if "comments_total:down" in pool:     # clicks usually follow, but a lull is hard to prove
        found.append(Finding(T.HOST_ABSENT, _take(pool, {
            "comments_total:down", "product_clicks_total:down", "viewers:down", "likes_total:down",
            "orders_total:down", "gmv_total:down", "entries_total:down"}), kind="interaction_collapse"))
    if "entries_total:down" in pool and "product_clicks_total:down" not in pool:
        found.append(Finding(T.PLATFORM_THROTTLE, _take(pool, {
            "entries_total:down", "viewers:down", "comments_total:down", "likes_total:down"}),
            kind="entries_cliff"))
    surge = set(pool) & {"complaints_total:up", "refunds_total:up"}
    if surge:
        found.append(Finding(T.COMPLAINT_SURGE, _take(pool, surge), kind="surge"))
    crowd = set(pool) & {"viewers:up", "entries_total:up"}
    engaged = set(pool) & {"comments_total:up", "likes_total:up", "product_clicks_total:up",
                           "orders_total:up"}
    if crowd and not engaged:
        found.append(Finding(T.BOT_TRAFFIC, _take(pool, crowd), kind="audience_without_engagement"))
    return found, pool
