"""The room model: latent audience, interaction, sales and stream health, second by second,
and what each collector reports of it.

Why this shape: the audience is a stock (viewers) fed by entries and drained by exits, so
entries track viewer churn (viewers / mean watch time + growth) and every rate that people
produce - comments, likes, clicks - is proportional to the *real* audience; orders follow
clicks times a conversion, GMV follows orders times the current price.  Counts are Poisson
with bursty (log-normal) rate noise; gauges get multiplicative noise.  Events only bend the
rates (effects.py), so relations hold during incidents too: bots inflate viewers and entries
but nobody extra comments or buys.  One call generates one chunk of seconds for one room and
returns sample arrays; state (audience, cumulative counters, reset offsets) carries over.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamwatch.sim.artifacts import ArtifactPlan, CollectorPlan
from streamwatch.sim.collectors import METRIC_INDEX, ROOM_COLLECTORS, CollectorSpec, Grid
from streamwatch.sim.effects import ROOM_EFFECTS, ActiveEvents, Event, RoomEffects
from streamwatch.sim.profiles import RoomProfile
from streamwatch.types import Floats, Ints

__all__ = ["Batch", "RoomRuntime", "COUNTERS", "collect", "deliver"]

COUNTERS = ("entries_total", "comments_total", "likes_total", "shares_total", "follows_total",
            "product_clicks_total", "orders_total", "gmv_total", "complaints_total",
            "refunds_total")
_ROW = {m: i for i, m in enumerate(COUNTERS)}
_ORDERS, _GMV = _ROW["orders_total"], _ROW["gmv_total"]


@dataclass(slots=True)
class Batch:
    """Samples of one collector in one chunk, as parallel arrays (session-relative times)."""
    arrival: Floats
    ts: Floats
    value: Floats
    metric: Ints


def collect(grid: Grid, cp: CollectorPlan | None, a: float, b: float,
            lo: float, hi: float, silences: list[tuple[float, float]]) -> tuple[Ints, Floats]:
    """The k's and times this collector reports in [a, b), honouring on-air span and silences."""
    ks = grid.ks_between(max(a, lo), min(b, hi))
    if ks.size == 0:
        return ks, np.empty(0)
    ts = grid.ts(ks)
    keep = (ts >= lo) & (ts < hi)
    quiet = silences + (cp.gaps if cp else [])
    for s, e in quiet:
        # 1 ms of slack: a sample just before s must not round (to ms) onto the labelled start
        keep &= ~((ts >= s - 0.001) & (ts < e))
    return ks[keep], ts[keep]


def deliver(rng: np.random.Generator, cp: CollectorPlan | None, ks: Ints, ts: Floats,
            values: list[Floats], metrics: tuple[str, ...], net_delay: float) -> Batch:
    """Arrival times (network delay, planned late deliveries) and planned duplicate re-sends."""
    arrival = ts + net_delay * rng.lognormal(0.0, 0.5, ts.size)
    if cp and cp.late:
        extra = np.array([cp.late.get(int(k), 0.0) for k in ks]) if ks.size else np.empty(0)
        arrival = arrival + extra
    n = len(metrics)
    arr = np.tile(arrival, n)
    tss = np.tile(ts, n)
    val = np.concatenate(values) if values else np.empty(0)
    mid = np.repeat(np.array([METRIC_INDEX[m] for m in metrics], dtype=np.int64), ts.size)
    if cp and cp.dup and ks.size:
        d = np.array([cp.dup.get(int(k), -1.0) for k in ks])
        sel = np.tile(d >= 0, n)
        if sel.any():
            arr = np.concatenate([arr, arr[sel] + np.tile(d, n)[sel]])
            tss = np.concatenate([tss, tss[sel]])
            val = np.concatenate([val, val[sel]])
            mid = np.concatenate([mid, mid[sel]])
    return Batch(arr, tss, val, mid)


class RoomRuntime:
    """Generates one room chunk by chunk; all randomness from its own RNG (deterministic)."""

    def __init__(self, room: RoomProfile, events: list[Event], plan: ArtifactPlan,
                 rng: np.random.Generator, session_s: float) -> None:
        self.room, self.rng, self.session_s = room, rng, session_s
        self.events = ActiveEvents([e for e in events if e.stream == room.stream])
        self.plan = plan
        self.silences = plan.silences.get(room.stream, [])
        self.viewers: float | None = None
        self.bots = 0.0
        self.cum = np.zeros(len(COUNTERS))
        self.offsets = {s.name: np.zeros(len(COUNTERS)) for s in ROOM_COLLECTORS}
        self.prev_real: float | None = None

    def _latent(self, a: int, b: int) -> tuple[RoomEffects, Floats, Floats, Floats]:
        room, rng = self.room, self.rng
        n = b - a
        t = a + np.arange(n) + 0.5
        on = room.on_air(t)
        fx = RoomEffects(n, room.base_tau_s)
        for ev in self.events.window(a, b):
            if ev.start < b and ev.reach > a:
                ROOM_EFFECTS[ev.type](fx, t, ev)
        base = room.peak * room.wander(t) * on
        target = (base * fx.v_mult).tolist()
        gain = (1.0 - np.exp(-1.0 / fx.tau)).tolist()
        v = float(target[0]) if self.viewers is None else self.viewers
        out = [0.0] * n
        for i in range(n):
            v += (target[i] - v) * gain[i]
            out[i] = v
        self.viewers = v
        real = np.array(out) * on
        bots = base * fx.bot
        d_real = np.diff(real, prepend=real[0] if self.prev_real is None else self.prev_real)
        d_bots = np.diff(bots, prepend=self.bots)
        self.prev_real, self.bots = float(real[-1]), float(bots[-1])
        eng = room.engagement(t)
        noise = rng.lognormal(-0.25 ** 2 / 2, 0.25, (3, n))
        clicks = real * room.click_pm / 60.0 * eng * fx.click * noise[2]
        usual_orders = real * room.click_pm / 60.0 * eng * room.conversion
        rates = np.vstack([
            (real / room.dwell_s + np.maximum(d_real, 0.0)) * fx.entries
            + bots / room.bot_dwell_s + np.maximum(d_bots, 0.0),
            real * room.comment_pm / 60.0 * eng * fx.comment * noise[0],
            real * room.like_pm / 60.0 * eng * fx.like * noise[1],
            real * room.share_pm / 60.0 * eng * fx.share,
            real * room.follow_pm / 60.0 * fx.follow,
            clicks,
            clicks * room.conversion * fx.conv,
            (room.complaint_floor_pm / 60.0 + room.complaint_per_order * usual_orders)
            * fx.complaint,
            (room.refund_floor_pm / 60.0 + room.refund_per_order * usual_orders) * fx.refund,
        ]) * on
        counts = rng.poisson(np.maximum(rates, 0.0)).astype(np.float64)
        price = room.price(t) * fx.price
        gmv = rng.gamma(counts[6] * room.basket_shape, price / room.basket_shape)
        inc = np.vstack([counts[:7], gmv[None, :], counts[7:]])
        cum = self.cum[:, None] + np.cumsum(inc, axis=1)
        self.cum = cum[:, -1].copy()
        return fx, real, bots, cum

    def chunk(self, a: int, b: int) -> tuple[list[Batch], Floats, Floats]:
        """Samples whose ts falls in [a, b); also orders and audience per second (service load)."""
        room, rng = self.room, self.rng
        n = b - a
        batches: list[Batch] = []
        if b <= room.start or a >= room.end:
            orders, audience = np.zeros(n), np.zeros(n)
            fx = None
        else:
            fx, real, bots, cum = self._latent(a, b)
            orders = np.diff(cum[_ORDERS], prepend=cum[_ORDERS][0])
            audience = real + bots
        for spec in ROOM_COLLECTORS:
            life = spec.name == "lifecycle"
            if fx is None and not life:
                continue
            cp = self.plan.plans.get((room.stream, spec.name))
            hi = self.session_s if life else room.end
            ks, ts = collect(room.grids[spec.name], cp, a, b, room.start, hi, self.silences)
            if life:
                vals = [(ts < room.end).astype(np.float64)]
                if room.ends_in_session and a <= room.end < b and not any(
                        s <= room.end < e for s, e in self.silences):
                    ks = np.append(ks, -1)
                    ts = np.append(ts, room.end)
                    vals = [np.append(vals[0], 0.0)]
            else:
                assert fx is not None
                idx = np.floor(ts).astype(np.int64) - a
                vals = self._values(spec, cp, fx, real, bots, cum, idx, ts, a)
            if ts.size:
                batches.append(deliver(rng, cp, ks, ts, vals, spec.metrics,
                                       room.net_delay_s[spec.name]))
        return batches, orders, audience

    def _values(self, spec: CollectorSpec, cp: CollectorPlan | None, fx: RoomEffects,
                real: Floats, bots: Floats, cum: Floats, idx: Ints, ts: Floats,
                a: int) -> list[Floats]:
        room, rng, m = self.room, self.rng, idx.size
        if spec.name == "health":
            bitrate = room.bitrate_nominal * fx.bitrate[idx] * rng.lognormal(0, room.bitrate_sd, m)
            fps = np.maximum(room.fps_nominal * fx.fps[idx] - np.abs(rng.normal(0, room.fps_sd, m)),
                             0.0)
            drop = room.drop_base * rng.lognormal(0, 0.6, m) + fx.drop_add[idx] * rng.uniform(
                0.6, 1.4, m)
            rebuf = room.rebuffer_base * rng.lognormal(0, 0.6, m) + fx.rebuf_add[idx] * rng.uniform(
                0.6, 1.4, m)
            return [np.round(bitrate, 1), np.round(fps, 2), np.round(np.clip(drop, 0, 1), 5),
                    np.round(np.clip(rebuf, 0, 1), 5)]
        out: list[Floats] = []
        for metric in spec.metrics:
            if metric == "viewers":
                tot = real[idx] + bots[idx]
                obs = (tot * rng.lognormal(0, room.viewers_sd, m)
                       + rng.normal(0, 0.5, m) * np.sqrt(tot))
                out.append(np.maximum(np.round(obs), 0.0))
        rows = [_ROW[x] for x in spec.metrics if x.endswith("_total")]
        off = self.offsets[spec.name]
        vals = cum[rows][:, idx] - off[rows][:, None]
        for r in (cp.resets if cp else []):
            if a <= r < a + cum.shape[1]:
                # a collector restart: everything it reports from r on counts from zero again
                new = cum[rows][:, int(np.floor(r)) - a]
                after = ts >= r
                vals[:, after] = cum[rows][:, idx[after]] - new[:, None]
                off[rows] = new
        for i, row in enumerate(rows):
            out.append(np.round(vals[i], 2) if row == _GMV else vals[i])
        return out
