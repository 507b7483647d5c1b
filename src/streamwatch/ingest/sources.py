"""What one poll of a pull source turns into: fetched bytes -> validated samples.

Kept apart from the scheduling in pull.py (intervals, back-off, health), so each kind's
translation can be tested on plain bytes. Every sample a poller makes is checked by the same
parsers as a push (`Service.parser.parse_ndjson`, `parse_json_array`): a pulled sample is
accepted or rejected for exactly the reasons a pushed one would be.

Mapping formats (documented for users in config/sources.toml):
- http_json, `mapping` empty: the body *is* samples (CONTRACTS §2), a JSON array or NDJSON.
- http_json, `mapping` set: the body is room stats, `{"dotted.path": target}`; a target is a
  metric name, or `stream` / `ts` for the fields naming the stream and the time. A path may
  contain one `[]` ("data.rooms[].online_count"): the list holding one record per room; paths
  without `[]` are read from the top and shared by every record. A top-level array is a list of
  records. Numeric strings become numbers, booleans 1/0, a `ts` above 1e11 is milliseconds.
- prometheus: `{"selector": metric}`; a selector is a series name with an optional exact label
  filter (`http_requests_total{code="500"}`), optionally wrapped in `rate(...)` (per-second
  increase between two scrapes; counter resets skip one scrape). Series matching one selector are
  summed per stream (like PromQL `sum by (stream_label)`).
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from streamwatch.config.schema import SourceSettings
from streamwatch.ingest.batch import Batch, Limits, Rejection
from streamwatch.ingest.parse import parse_json_array

__all__ = ["PollError", "Polled", "Selector", "JsonMapping", "parse_selector", "source_problems",
           "fetch", "validate_samples", "samples_body", "room_stats_samples", "prometheus_samples",
           "PrometheusRates"]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_PAIR = r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*'
_SELECTOR = re.compile(rf"\s*(?P<rate>rate\(\s*)?(?P<name>{_NAME})\s*"
                       rf"(?:\{{(?P<labels>(?:{_PAIR},)*(?:{_PAIR})?)\}})?\s*(?P<close>\))?\s*")
_PAIRS = re.compile(_PAIR)
_ARRAY_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*\[")
_MS_THRESHOLD = 1e11        # unix seconds reach 1e11 in the year 5138; a larger ts is milliseconds
_ROOM_STATS_TARGETS = frozenset({"stream", "ts"})


class PollError(Exception):
    """A poll failed as a whole; the message becomes `SourceState.last_error`. `polled` carries
    the rejections of a body whose every sample was refused, so they are still counted."""

    def __init__(self, message: str, polled: Polled | None = None) -> None:
        super().__init__(message)
        self.polled = polled


@dataclass(slots=True)
class Polled:
    """The good samples of one poll and how many were refused, by reason."""
    batch: Batch
    rejected: Counter[str] = field(default_factory=Counter)
    first_rejection: str = ""


# -- settings ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Selector:
    name: str
    labels: tuple[tuple[str, str], ...]
    rate: bool

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        return name == self.name and all(labels.get(k) == v for k, v in self.labels)


def parse_selector(text: str) -> Selector:
    """`name`, `name{k="v",...}`, `rate(name{...})` -> Selector; ValueError says what is wrong."""
    m = _SELECTOR.fullmatch(text)
    if m is None or bool(m["rate"]) != bool(m["close"]):
        raise ValueError('not a series selector like name, name{label="value"} or rate(name)')
    pairs = tuple((k, v.replace('\\"', '"').replace("\\\\", "\\"))
                  for k, v in _PAIRS.findall(m["labels"] or ""))
    return Selector(m["name"], pairs, bool(m["rate"]))


@dataclass(frozen=True, slots=True)
class JsonMapping:
    """A room-stats mapping, split into the record list and the paths read from each record."""
    list_path: tuple[str, ...] | None          # None: the top level is the record (or list)
    shared: tuple[tuple[tuple[str, ...], str], ...]     # read from the top, for every record
    per_record: tuple[tuple[tuple[str, ...], str], ...]

    @staticmethod
    def compile(mapping: dict[str, str]) -> JsonMapping:
        lists: set[tuple[str, ...]] = set()
        shared, per = [], []
        for key, target in mapping.items():
            if key.count("[]") > 1:
                raise ValueError(f"{key!r}: at most one [] per path")
            if "[]" in key:
                head, _, tail = key.partition("[]")
                lists.add(_path(head))
                per.append((_path(tail), target))
            else:
                shared.append((_path(key), target))
        if len(lists) > 1:
            raise ValueError("all [] paths must name the same list, got "
                             + ", ".join(".".join(p) + "[]" for p in sorted(lists)))
        for t in _ROOM_STATS_TARGETS:
            if sum(1 for _, x in shared + per if x == t) > 1:
                raise ValueError(f"more than one field is mapped to {t!r}")
        if not any(x not in _ROOM_STATS_TARGETS for _, x in shared + per):
            raise ValueError("no field is mapped to a metric")
        return JsonMapping(lists.pop() if lists else None, tuple(shared), tuple(per))


def _path(text: str) -> tuple[str, ...]:
    return tuple(p for p in text.strip(".").split(".") if p)


def source_problems(s: SourceSettings) -> list[tuple[str, object, str]]:
    """(field, value, why) for each setting of `s` its kind cannot work with."""
    out: list[tuple[str, object, str]] = []
    if s.kind in ("http_json", "prometheus"):
        u = urlsplit(s.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            out.append(("url", s.url, "must be an http:// or https:// URL with a host"))
        if not s.interval > 0:
            out.append(("interval", s.interval, "must be > 0"))
        if not s.timeout > 0:
            out.append(("timeout", s.timeout, "must be > 0"))
    if not 0 <= s.jitter < 1:
        out.append(("jitter", s.jitter, "must be a fraction of the interval in [0, 1)"))
    for key, target in s.mapping.items():
        if not target.strip():
            out.append(("mapping", key, "maps to an empty name"))
    if s.kind == "prometheus":
        if not s.mapping:
            out.append(("mapping", s.mapping, "name the series to keep: {\"series\" = \"metric\"}"))
        for key in s.mapping:
            try:
                parse_selector(key)
            except ValueError as exc:
                out.append(("mapping", key, str(exc)))
    elif s.kind == "http_json" and s.mapping:
        try:
            JsonMapping.compile(s.mapping)
        except ValueError as exc:
            out.append(("mapping", s.mapping, str(exc)))
    elif s.kind == "simulator":
        if s.rooms < 0:
            out.append(("rooms", s.rooms, "must be >= 0"))
        if not s.minutes > 0:
            out.append(("minutes", s.minutes, "must be > 0"))
        if not s.speed > 0:
            out.append(("speed", s.speed, "must be > 0"))
    return out


# -- fetching ---------------------------------------------------------------------------------
async def fetch(client: httpx.AsyncClient, url: str, *, timeout: float, max_bytes: int,
                accept: str) -> bytes:
    """GET `url`; any answer but 2xx, or a body over `max_bytes`, is a PollError."""
    try:
        async with client.stream("GET", url, timeout=timeout,
                                 headers={"Accept": accept}) as resp:
            if not 200 <= resp.status_code < 300:
                raise PollError(f"HTTP {resp.status_code} from {url}")
            buf = bytearray()
            async for chunk in resp.aiter_bytes():
                buf += chunk
                if len(buf) > max_bytes:
                    raise PollError(f"body larger than {max_bytes} bytes")
            return bytes(buf)
    except httpx.TimeoutException as exc:
        raise PollError(f"timeout after {timeout:g}s ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise PollError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) \
            from exc


# -- validation -------------------------------------------------------------------------------
def _count(rejections: Iterable[Rejection], into: Polled) -> Polled:
    for r in rejections:
        if not into.first_rejection:
            into.first_rejection = (f"{r.position_kind} {r.position}"
                                    f"{' ' + r.field if r.field else ''}: {r.detail}")
        into.rejected[str(r.reason)] += 1
    return into


def _encode(sample: dict[str, Any]) -> bytes:
    """One NDJSON line. orjson would write NaN/inf as null (a wrong-type verdict), so they go
    as the strings the validator calls non-finite; what orjson cannot encode (an integer beyond
    64 bits) goes through the stdlib."""
    for k in ("ts", "value"):
        v = sample[k]
        if isinstance(v, float) and not math.isfinite(v):
            sample[k] = "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    try:
        return orjson.dumps(sample)
    except TypeError:
        return json.dumps(sample).encode()


def validate_samples(service: Any, samples: list[dict[str, Any]], now: float) -> Polled:
    """Dicts a poller built -> the push path's verdict on each, by the push path's parser."""
    if not samples:
        return Polled(Batch.empty())
    data = b"\n".join(map(_encode, samples))
    res = service.parser.parse_ndjson(data, now=now, limits=service.limits)
    return _count(res.rejections, Polled(res.batch))


def samples_body(service: Any, body: bytes, now: float) -> Polled:
    """A body of samples, exactly as `POST /v1/samples` would read it."""
    limits: Limits = service.limits
    if _ARRAY_START.match(body):
        res = parse_json_array(body, now=now, limits=limits)
        # names interned now, under the stream limit, as parse_ndjson does (ingest/newnames.py)
        res = service.parser.commit(res, None, limits, "index") if res.fatal is None else res
    else:
        res = service.parser.parse_ndjson(body, now=now, limits=limits)
    if res.fatal is not None:
        f = res.fatal
        raise PollError(f"body is not samples: {f.position_kind} {f.position}: {f.detail}")
    polled = _count(res.rejections, Polled(res.batch))
    if not len(polled.batch) and polled.rejected:
        raise _all_rejected(polled)
    return polled


def _all_rejected(p: Polled) -> PollError:
    return PollError(f"no valid sample in the body: {sum(p.rejected.values())} rejected "
                     f"(first: {p.first_rejection})", p)


# -- room stats (http_json with a mapping) ----------------------------------------------------
def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
    return obj


def _number(v: Any) -> Any:
    """Room-stats leniency: "1234" -> 1234.0, true -> 1.0; anything else is left for the
    validator to refuse with its usual reason."""
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            return v
        return x if math.isfinite(x) else v
    return v


def _stamp(v: Any, now: float) -> Any:
    if v is None:
        return now
    v = _number(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > _MS_THRESHOLD:
        return v / 1000.0
    return v


def room_stats_samples(service: Any, body: bytes, mapping: JsonMapping, default_stream: str,
                       now: float) -> Polled:
    """Room stats mapped to samples; a body without any mapped field is a PollError."""
    try:
        root = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PollError(f"body is not JSON: {exc}") from exc
    if mapping.list_path is not None:
        records = _get(root, mapping.list_path)
        if not isinstance(records, list):
            raise PollError(f"{'.'.join(mapping.list_path) or 'the body'} is not a list")
    else:
        records = root if isinstance(root, list) else [root]
    common = {t: _get(root, p) for p, t in mapping.shared}
    out: list[dict[str, Any]] = []
    for rec in records:
        found = dict(common)
        found.update({t: _get(rec, p) for p, t in mapping.per_record})
        stream = found.pop("stream", None)
        stream = default_stream if stream is None else str(stream)
        ts = _stamp(found.pop("ts", None), now)
        out += [{"stream": stream, "metric": m, "ts": ts, "value": _number(v)}
                for m, v in found.items() if v is not None]
    if not out:
        raise PollError("no mapped field found in the body (looked for "
                        + ", ".join(".".join(p) for p, _ in mapping.shared + mapping.per_record)
                        + ")")
    polled = validate_samples(service, out, now)
    if not len(polled.batch):
        raise _all_rejected(polled)
    return polled


# -- prometheus -------------------------------------------------------------------------------
@dataclass
class PrometheusRates:
    """The previous scrape's sums of `rate(...)` selectors, per (stream, metric)."""
    last: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def rate(self, key: tuple[str, str], value: float, ts: float) -> float | None:
        prev = self.last.get(key)
        self.last[key] = (value, ts)
        if prev is None or not ts > prev[1] or value < prev[0]:
            return None                       # first scrape, no time passed, or a reset
        return (value - prev[0]) / (ts - prev[1])


def prometheus_samples(service: Any, body: bytes, selectors: list[tuple[Selector, str]],
                       stream_label: str, default_stream: str, rates: PrometheusRates,
                       now: float) -> Polled:
    """A text-format scrape -> samples of the mapped series (see the module docstring)."""
    from prometheus_client.parser import text_string_to_metric_families
    try:
        text = body.decode("utf-8")
        families = list(text_string_to_metric_families(text))
    except (UnicodeDecodeError, ValueError, TypeError, IndexError) as exc:
        raise PollError(f"not Prometheus text format: {str(exc)[:200]}") from exc
    sums: dict[tuple[str, str, bool], list[float]] = {}     # -> [sum, newest ts]
    for fam in families:
        for smp in fam.samples:
            for sel, metric in selectors:
                if not sel.matches(smp.name, smp.labels):
                    continue
                stream = smp.labels.get(stream_label) or default_stream
                ts = float(smp.timestamp) if smp.timestamp is not None else now
                acc = sums.setdefault((stream, metric, sel.rate), [0.0, -math.inf])
                acc[0] += float(smp.value)
                acc[1] = max(acc[1], ts)
    if not sums:
        raise PollError("no mapped series in the scrape (looked for "
                        + ", ".join(sorted({s.name for s, _ in selectors})) + ")")
    out: list[dict[str, Any]] = []
    for (stream, metric, is_rate), (value, ts) in sums.items():
        if is_rate:
            r = rates.rate((stream, metric), value, ts)
            if r is None:
                continue
            value = r
        out.append({"stream": stream, "metric": metric, "ts": ts, "value": value})
    return validate_samples(service, out, now)
