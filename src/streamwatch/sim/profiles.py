"""Per-stream constants: who a room is (audience, engagement, prices, stream quality, cadences).

Everything here is drawn once, at construction, from the scenario RNG, so the ground truth
(labels, impact at onset) can be computed before a single sample is generated.  The ranges aim
at plausible live-commerce numbers: comments ~0.02-0.2 per viewer per minute, product clicks
~1-10 %, conversion of clicks into orders ~2-15 %, so a 50-viewer room sells a few items per hour
while a 50,000-viewer room sells hundreds per minute.  Audience sizes are log-uniform over three
orders of magnitude, stratified across rooms so even a small session spans a wide range.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamwatch.sim.collectors import ROOM_COLLECTORS, SERVICE_COLLECTOR, Grid
from streamwatch.types import Floats

__all__ = ["RoomProfile", "ServiceProfile", "draw_rooms", "draw_services", "PLATFORMS", "KNOT_S"]

PLATFORMS = ("douyin", "taobao", "kuaishou", "tiktok_shop")
KNOT_S = 60.0          # resolution of the slow "wander" processes (audience mood, engagement)


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _ar1_knots(rng: np.random.Generator, n: int, tau_s: float, sd: float) -> Floats:
    """A stationary AR(1) path in log space sampled every KNOT_S seconds."""
    phi = float(np.exp(-KNOT_S / tau_s))
    eps = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, sd)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + eps[i]
    return x


@dataclass(slots=True)
class RoomProfile:
    """Constants of one room; lifecycle times are session-relative seconds."""
    index: int
    stream: str
    platform: str
    start: float
    end: float
    ends_in_session: bool
    preexisting: bool                   # already on air when the session began (no ramp-up)
    peak: float                         # peak of the baseline audience (labels' peak_viewers)
    log_wander: Floats                  # knots, normalised so max over on-air time is 0
    log_engagement: Floats
    dwell_s: float                      # mean watch time: entries ~ viewers / dwell
    bot_dwell_s: float
    base_tau_s: float                   # how fast the audience follows its target
    comment_pm: float                   # per viewer per minute
    like_pm: float
    share_pm: float
    follow_pm: float
    click_pm: float
    conversion: float                   # orders per click
    basket_shape: float                 # gamma shape of one order's value (spread of basket size)
    complaint_floor_pm: float
    complaint_per_order: float
    refund_floor_pm: float
    refund_per_order: float
    price_center: float
    bitrate_nominal: float
    bitrate_sd: float
    fps_nominal: float
    fps_sd: float
    drop_base: float
    rebuffer_base: float
    viewers_sd: float
    grids: dict[str, Grid]
    net_delay_s: dict[str, float]       # median network delay per collector
    price_times: Floats = field(default_factory=lambda: np.zeros(1))
    prices: Floats = field(default_factory=lambda: np.ones(1))

    def wander(self, t: Floats) -> Floats:
        """Slow multiplicative audience drift (<= 1): crowds build and thin out over minutes."""
        return np.exp(np.interp(t / KNOT_S, np.arange(self.log_wander.size), self.log_wander))

    def engagement(self, t: Floats) -> Floats:
        return np.exp(np.interp(t / KNOT_S, np.arange(self.log_engagement.size),
                                self.log_engagement))

    def price(self, t: Floats) -> Floats:
        """Price of the product on sale at t (piecewise constant, changes on product switch)."""
        i = np.searchsorted(self.price_times, t, side="right") - 1
        return self.prices[np.clip(i, 0, self.prices.size - 1)]

    def on_air(self, t: Floats) -> Floats:
        return ((t >= self.start) & (t < self.end)).astype(np.float64)


@dataclass(slots=True)
class ServiceProfile:
    """A shared backend service (``svc:payment``, ``svc:api``) and its healthy operating point."""
    stream: str
    load: str                           # "orders" or "viewers": what drives its CPU
    cpu_base: float
    cpu_sd: float
    latency_base_ms: float
    latency_sd: float
    error_base: float
    grid: Grid
    net_delay_s: float


def _key(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**63 - 1))


def _grids(rng: np.random.Generator, start: float) -> tuple[dict[str, Grid], dict[str, float]]:
    grids: dict[str, Grid] = {}
    delays: dict[str, float] = {}
    for spec in ROOM_COLLECTORS:
        lo, hi = spec.cadence_range
        cad = float(rng.integers(lo, hi + 1))
        if spec.name == "lifecycle":
            grids[spec.name] = Grid(start, cad, _key(rng), exact_first=True)
        else:
            grids[spec.name] = Grid(start + rng.uniform(0.0, cad), cad, _key(rng))
        delays[spec.name] = _loguniform(rng, 0.05, 0.8)
    return grids, delays


def draw_rooms(rng: np.random.Generator, n: int, session_s: float) -> list[RoomProfile]:
    """Draw n rooms: staggered starts (some already live), some ending before the session does."""
    strata = rng.permutation(n)
    rooms: list[RoomProfile] = []
    n_knots = int(np.ceil(session_s / KNOT_S)) + 2
    for i in range(n):
        u = (strata[i] + rng.uniform()) / n
        peak = float(50.0 * 1000.0 ** u)
        preexisting = bool(rng.uniform() < 0.35)
        start = 0.0 if preexisting else float(rng.uniform(0.0, 0.3 * session_s))
        end, ends = session_s, False
        lo_end = max(start + 0.4 * session_s, 0.6 * session_s)
        if rng.uniform() < 0.35 and lo_end < 0.97 * session_s and session_s >= 20 * 60:
            end, ends = float(rng.uniform(lo_end, 0.97 * session_s)), True
        wander = _ar1_knots(rng, n_knots, _loguniform(rng, 300, 1800), rng.uniform(0.08, 0.3))
        k0, k1 = int(start // KNOT_S), int(np.ceil(end / KNOT_S)) + 1
        wander = wander - wander[k0:k1 + 1].max()
        engagement = _ar1_knots(rng, n_knots, _loguniform(rng, 200, 1200), rng.uniform(0.05, 0.2))
        grids, delays = _grids(rng, start)
        rooms.append(RoomProfile(
            index=i, stream=f"room-{i:03d}", platform=str(rng.choice(PLATFORMS)),
            start=start, end=end, ends_in_session=ends, preexisting=preexisting, peak=peak,
            log_wander=wander, log_engagement=engagement,
            dwell_s=(dwell := _loguniform(rng, 60, 400)),
            bot_dwell_s=dwell * rng.uniform(0.6, 1.2),
            base_tau_s=rng.uniform(15, 45),
            comment_pm=_loguniform(rng, 0.02, 0.2), like_pm=_loguniform(rng, 0.5, 6.0),
            share_pm=_loguniform(rng, 0.002, 0.02), follow_pm=_loguniform(rng, 0.003, 0.03),
            click_pm=_loguniform(rng, 0.01, 0.1), conversion=_loguniform(rng, 0.02, 0.15),
            basket_shape=rng.uniform(2.0, 8.0),
            complaint_floor_pm=_loguniform(rng, 0.02, 0.1),
            complaint_per_order=_loguniform(rng, 0.004, 0.02),
            refund_floor_pm=_loguniform(rng, 0.015, 0.08),
            refund_per_order=_loguniform(rng, 0.008, 0.03),
            price_center=_loguniform(rng, 20, 400),
            bitrate_nominal=float(rng.choice([1500, 2500, 3000, 4000, 6000, 8000])) *
            rng.uniform(0.9, 1.1),
            bitrate_sd=rng.uniform(0.03, 0.12), fps_nominal=float(rng.choice([25, 30, 30, 60])),
            fps_sd=rng.uniform(0.1, 1.0), drop_base=_loguniform(rng, 0.0005, 0.01),
            rebuffer_base=_loguniform(rng, 0.001, 0.02), viewers_sd=rng.uniform(0.005, 0.03),
            grids=grids, net_delay_s=delays,
        ))
    return rooms


def draw_services(rng: np.random.Generator) -> list[ServiceProfile]:
    out: list[ServiceProfile] = []
    for stream, load in (("svc:payment", "orders"), ("svc:api", "viewers")):
        lo, hi = SERVICE_COLLECTOR.cadence_range
        cad = float(rng.integers(lo, hi + 1))
        out.append(ServiceProfile(
            stream=stream, load=load, cpu_base=rng.uniform(0.15, 0.45),
            cpu_sd=rng.uniform(0.02, 0.06),
            latency_base_ms=_loguniform(rng, 60, 300), latency_sd=rng.uniform(0.06, 0.2),
            error_base=_loguniform(rng, 0.0005, 0.005),
            grid=Grid(rng.uniform(0.0, cad), cad, _key(rng)),
            net_delay_s=_loguniform(rng, 0.02, 0.3),
        ))
    return out
