"""Normal-but-scary events (DOMAIN.md): recognised so they are shown as notices, never paged.

What is left after the incident signatures is either one of these or an unexplained single-metric
anomaly; both become level-4 notices. Only signals from generic-profile rules (metrics outside the
catalogue, which no signature can interpret) keep their rule's own level.
"""
from __future__ import annotations

from streamwatch.assess.signals import Signal
from streamwatch.assess.signatures import Finding
from streamwatch.types import IncidentType

__all__ = ["recognise_normal", "RAMP_UP_S"]

RAMP_UP_S = 600.0   # a broadcast's first minutes: the audience is still arriving

_RECOGNISERS: list[tuple[str, set[str]]] = [
    ("lottery", {"comments_total:up", "likes_total:up", "shares_total:up"}),
    ("flash_sale", {"product_clicks_total:up", "orders_total:up", "gmv_total:up"}),
    ("product_switch", {"product_clicks_total:down", "orders_total:down", "gmv_total:down"}),
    ("goodbye", {"viewers:down", "comments_total:down", "likes_total:down", "entries_total:down"}),
]


def recognise_normal(pool: dict[str, Signal], stream_age_s: float) -> list[Finding]:
    """Notices for what is left in `pool` (consumed)."""
    found: list[Finding] = []
    if stream_age_s < RAMP_UP_S and pool:
        found.append(Finding(IncidentType.NORMAL_EVENT, list(pool.values()), kind="ramp_up"))
        pool.clear()
        return found
    for kind, keys in _RECOGNISERS:
        hit = sorted(set(pool) & keys)
        if hit:
            found.append(Finding(IncidentType.NORMAL_EVENT, [pool.pop(k) for k in hit], kind=kind))
    generic = [k for k, s in pool.items() if s.rule.metric == "*"]
    for k in generic:
        s = pool.pop(k)
        found.append(Finding(IncidentType.UNKNOWN, [s], kind="generic", level_hint=s.level))
    if pool:
        found.append(Finding(IncidentType.UNKNOWN, list(pool.values()), kind="unexplained",
                             level_hint=4))
        pool.clear()
    return found
