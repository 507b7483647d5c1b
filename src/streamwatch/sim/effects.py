"""How each scheduled event bends a stream's latent rates: one small function per event type.

Events (incidents, normal-but-scary events, background noise) never write samples themselves;
they multiply the room's latent rates and gauges for their time window, with ramps in and out,
and the room model turns rates into Poisson counts and noisy gauges.  Keeping the effect of each
event type in one place makes "what does a throttle look like in the data" a one-screen read,
and lets several events compose (a lottery during a slow audience drift, a flash sale after a
product switch) without special cases.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from streamwatch.types import Bools, Floats

__all__ = [
    "Event", "RoomEffects", "ServiceEffects", "envelope", "ramp_factor", "goodbye_factor",
    "ROOM_EFFECTS", "SERVICE_EFFECTS", "ActiveEvents",
]


@dataclass(slots=True)
class Event:
    """One scheduled happening on one stream, in session-relative seconds.

    ``category`` is "incident", "normal" (labelled, must not page), "internal" (the room-side
    effect of a shared incident) or "noise" (unlabelled, e.g. a 5-second stutter).  ``tail`` is
    how long after ``end`` the event still shapes the data (recovery).
    """
    category: str
    type: str
    stream: str
    start: float
    end: float
    params: dict[str, float] = field(default_factory=dict)
    tail: float = 0.0

    @property
    def reach(self) -> float:
        """Until when the event still shapes the data: its recovery tail or its fade-out ramp."""
        return self.end + max(self.tail, self.params.get("fall", 0.0))


class RoomEffects:
    """Per-second multipliers (1 = no effect) and additions over one chunk of one room."""
    __slots__ = ("v_mult", "tau", "entries", "bot", "comment", "like", "share", "follow", "click",
                 "conv", "price", "complaint", "refund", "bitrate", "fps", "drop_add",
                 "rebuf_add", "silent")

    def __init__(self, n: int, base_tau: float) -> None:
        for name in self.__slots__:
            setattr(self, name, np.ones(n))
        self.tau = np.full(n, base_tau)
        self.bot = np.zeros(n)
        self.drop_add = np.zeros(n)
        self.rebuf_add = np.zeros(n)
        self.silent: Bools = np.zeros(n, dtype=bool)


class ServiceEffects:
    """Per-second service changes: CPU and errors pulled toward a level, latency scaled."""
    __slots__ = ("cpu_target", "cpu_weight", "lat_mult", "err_target", "err_weight")

    def __init__(self, n: int) -> None:
        self.cpu_target = np.zeros(n)
        self.cpu_weight = np.zeros(n)
        self.lat_mult = np.ones(n)
        self.err_target = np.zeros(n)
        self.err_weight = np.zeros(n)


def envelope(t: Floats, s: float, e: float, rise: float, fall: float) -> Floats:
    """0 before s, linear rise over `rise` s, 1 until e, linear fall over `fall` s after e."""
    up = np.clip((t - s) / rise, 0.0, 1.0) if rise > 0 else (t >= s).astype(np.float64)
    down = np.clip(1.0 - (t - e) / fall, 0.0, 1.0) if fall > 0 else (t < e).astype(np.float64)
    return np.minimum(up, down) * (t >= s)


def _smooth(x: Floats) -> Floats:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def ramp_factor(t: Floats, s: float, e: float) -> Floats:
    """Audience build-up after going on air: from ~2 % to 100 % of the baseline over [s, e)."""
    return 0.02 + 0.98 * _smooth((t - s) / max(e - s, 1.0))


def goodbye_factor(t: Floats, s: float, e: float, floor: float) -> Floats:
    """Audience thinning while the host says goodbye: 100 % down to `floor` over [s, e)."""
    return 1.0 - (1.0 - floor) * _smooth((t - s) / max(e - s, 1.0))


def _scale(arr: Floats, level: float, env: Floats) -> None:
    """In place: multiply by `level` where env is 1, blending linearly where it ramps."""
    arr *= 1.0 + (level - 1.0) * env


def _set_tau(fx: RoomEffects, t: Floats, ev: Event, during: float, after: float) -> None:
    fx.tau = np.where((t >= ev.start) & (t < ev.end), during, fx.tau)
    if ev.tail > 0:
        fx.tau = np.where((t >= ev.end) & (t < ev.reach), after, fx.tau)


# --- incidents ---------------------------------------------------------------------------------

def _stream_outage(fx: RoomEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    env = envelope(t, ev.start, ev.end, p["rise"], p["fall"])
    step = envelope(t, ev.start, ev.end, 0, 0)
    _scale(fx.bitrate, p["bitrate_level"], env)
    _scale(fx.fps, p["fps_level"], env)
    fx.drop_add += p["drop_add"] * env
    fx.rebuf_add += p["rebuf_add"] * env
    fx.v_mult *= 1.0 - ev.params["magnitude"] * step
    _set_tau(fx, t, ev, p["tau_drop"], p["tau_rec"])
    _scale(fx.entries, p["entries_level"], step)
    for arr in (fx.comment, fx.like, fx.click, fx.follow, fx.share):
        _scale(arr, p["interact_level"], env)
    if p["silent"]:
        fx.silent |= (t >= ev.start) & (t < ev.end)


def _checkout_broken(fx: RoomEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    env = envelope(t, ev.start, ev.end, p["rise"], p["fall"])
    _scale(fx.conv, p["conv_level"], env)
    _scale(fx.complaint, p["complaint_level"], env)
    _scale(fx.refund, 0.5 + 0.5 * p["complaint_level"], env)


def _platform_throttle(fx: RoomEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    _scale(fx.entries, 1.0 - p["magnitude"], envelope(t, ev.start, ev.end, p["rise"], p["fall"]))
    _scale(fx.v_mult, p["viewer_level"], envelope(t, ev.start, ev.end, 0, 0))
    _set_tau(fx, t, ev, p["tau_decay"], p["tau_rec"])


def _host_absent(fx: RoomEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    env = envelope(t, ev.start, ev.end, p["rise"], p["fall"])
    _scale(fx.comment, 1.0 - p["magnitude"], env)
    _scale(fx.click, 1.0 - p["click_drop"], env)
    _scale(fx.like, p["like_level"], env)
    _scale(fx.follow, p["like_level"], env)
    _scale(fx.share, p["like_level"], env)
    _scale(fx.entries, p["entries_level"], env)
    _scale(fx.v_mult, p["viewer_level"], envelope(t, ev.start, ev.end, 0, 0))
    _set_tau(fx, t, ev, p["tau_decay"], p["tau_rec"])


def _complaint_surge(fx: RoomEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    _scale(fx.complaint, p["magnitude"], envelope(t, ev.start, ev.end, p["rise"], p["fall"]))
    _scale(fx.refund, p["refund_level"],
           envelope(t, ev.start + p["refund_delay"], ev.end, p["rise"], p["fall"]))


def _bot_traffic(fx: RoomEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    fx.bot += (p["magnitude"] - 1.0) * envelope(t, ev.start, ev.end, p["rise"], p["fall"])


def _payment_failure(fx: RoomEffects, t: Floats, ev: Event) -> None:
    """Room side of a shared payment outage: buyers click, pay, and fail."""
    _checkout_broken(fx, t, ev)


# --- normal events -----------------------------------------------------------------------------

def _ramp_up(fx: RoomEffects, t: Floats, ev: Event) -> None:
    inside = t < ev.end
    fx.v_mult *= np.where(inside, ramp_factor(t, ev.start, ev.end), 1.0)
    fx.tau = np.where(inside & (t >= ev.start), 10.0, fx.tau)


def _goodbye(fx: RoomEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    g = goodbye_factor(t, ev.start, ev.end, p["floor"])
    fx.v_mult *= g
    fx.click *= goodbye_factor(t, ev.start, ev.end, p["click_floor"])
    fx.comment *= np.clip(p["comment_level"] / g, 1.0, 10.0)
    fx.tau = np.where(t >= ev.start, 20.0, fx.tau)


def _flash_sale(fx: RoomEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    env = envelope(t, ev.start, ev.end, p["rise"], p["fall"])
    _scale(fx.click, p["magnitude"], env)
    _scale(fx.conv, p["conv_level"], env)
    _scale(fx.price, p["price_level"], env)
    _scale(fx.v_mult, p["viewer_level"], env)
    _scale(fx.entries, p["entries_level"], env)
    _scale(fx.comment, p["comment_level"], env)


def _lottery(fx: RoomEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    env = envelope(t, ev.start, ev.end, p["rise"], p["fall"])
    _scale(fx.comment, p["magnitude"], env)
    _scale(fx.like, p["like_level"], env)
    _scale(fx.share, p["share_level"], env)
    _scale(fx.follow, p["follow_level"], env)
    _scale(fx.entries, p["entries_level"], env)
    _scale(fx.v_mult, p["viewer_level"], env)


def _product_switch(fx: RoomEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    env = envelope(t, ev.start, ev.end, p["rise"], p["fall"])
    _scale(fx.click, 1.0 - p["magnitude"], env)
    _scale(fx.conv, p["conv_level"], env)


def _stutter(fx: RoomEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    env = envelope(t, ev.start, ev.end, 1.0, 2.0)
    _scale(fx.bitrate, p["bitrate_level"], env)
    fx.drop_add += p["drop_add"] * env
    fx.rebuf_add += p["rebuf_add"] * env


ROOM_EFFECTS: dict[str, Callable[[RoomEffects, Floats, Event], None]] = {
    "stream_outage": _stream_outage, "checkout_broken": _checkout_broken,
    "platform_throttle": _platform_throttle, "host_absent": _host_absent,
    "complaint_surge": _complaint_surge, "bot_traffic": _bot_traffic,
    "payment_failure": _payment_failure, "ramp_up": _ramp_up, "goodbye": _goodbye,
    "flash_sale": _flash_sale, "lottery": _lottery, "product_switch": _product_switch,
    "stutter": _stutter,
}


# --- services ----------------------------------------------------------------------------------

def _service_checkout_broken(fx: ServiceEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    env = envelope(t, ev.start, ev.end, p["rise"], p["fall"])
    fx.err_target = np.maximum(fx.err_target, p["magnitude"])
    fx.err_weight = np.maximum(fx.err_weight, env)
    _scale(fx.lat_mult, p["latency_level"], env)
    fx.cpu_target = np.maximum(fx.cpu_target, p["cpu_level"])
    fx.cpu_weight = np.maximum(fx.cpu_weight, 0.5 * env)


def _service_degradation(fx: ServiceEffects, t: Floats, ev: Event) -> None:
    p = ev.params
    env = envelope(t, ev.start, ev.end, p["rise"], p["fall"])
    fx.cpu_target = np.maximum(fx.cpu_target, p["cpu_level"])
    fx.cpu_weight = np.maximum(fx.cpu_weight, env)
    _scale(fx.lat_mult, p["magnitude"], env)
    if p["error_level"] > 0:
        fx.err_target = np.maximum(fx.err_target, p["error_level"])
        fx.err_weight = np.maximum(fx.err_weight, env)


SERVICE_EFFECTS: dict[str, Callable[[ServiceEffects, Floats, Event], None]] = {
    "checkout_broken": _service_checkout_broken, "service_degradation": _service_degradation,
}


class ActiveEvents:
    """Events touching a moving chunk window, without rescanning a long session's history.

    Chunks advance monotonically, so events (sorted by start) are admitted once and dropped once
    their reach has passed: O(events) over a whole session instead of O(events x chunks).
    """
    __slots__ = ("_pending", "_next", "_active")

    def __init__(self, events: list[Event]) -> None:
        self._pending = sorted(events, key=lambda e: e.start)
        self._next = 0
        self._active: list[Event] = []

    def window(self, a: float, b: float) -> list[Event]:
        while self._next < len(self._pending) and self._pending[self._next].start < b:
            self._active.append(self._pending[self._next])
            self._next += 1
        self._active = [e for e in self._active if e.reach > a]
        return self._active
