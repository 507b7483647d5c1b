"""The Grafana dashboard and the Prometheus example query only what the real /metrics exposes.

A dashboard drifts silently: a renamed metric just draws an empty panel. So the real service is
started (`live_server`), fed so that every family has samples (pushed samples that raise an
alert, a rejected sample, a refused body, a simulator pull source), scraped, and every metric
name and grouping label in the dashboard's PromQL (and in the commented alerting hints of
deploy/prometheus/prometheus.yml) is checked against that scrape.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from streamwatch.config.routing import RoutingSettings
from streamwatch.config.schema import EscalationStep, SourceSettings
from tests.api.conftest import (REPO, LiveServer, bearer, live_server_module, wait_until,
                                with_tokens)
from tests.pipeline.scenario import Effect, Room, samples

__all__: list[str] = []

_FIXTURES = (live_server_module,)   # pytest finds fixtures by name in this module

DASHBOARD = REPO / "deploy" / "grafana" / "streamwatch-dashboard.json"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
# labels Prometheus itself attaches to every scraped series (and our static_configs label)
TARGET_LABELS = {"job", "instance", "service"}
# series Prometheus generates per target
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
INGEST_TOKEN = "deploy-dashboard-ingest-0123456789"

FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile",
             "sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev",
             "count_values", "group", "vector", "scalar", "abs", "clamp_min", "clamp_max",
             "label_values", "absent", "changes", "resets", "max_over_time", "min_over_time",
             "avg_over_time", "time", "timestamp", "round", "ceil", "floor", "sort", "sort_desc"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless"}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)")
_RANGE = re.compile(r"\[[^\]]*\]")
_DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:ms|[smhdwy])\b")


# -- a small PromQL reader: enough for dashboards, strict about what it does not know ---------
@dataclass(frozen=True)
class Query:
    expr: str
    metrics: frozenset[str]          # series names as they appear (..._total, ..._bucket)
    grouping: frozenset[str]         # labels in by(...)/without(...)/on(...)
    matched: frozenset[str]          # labels in {...} matchers
    rated: frozenset[str]            # series passed to rate()/increase()/irate()
    unknown: frozenset[str]          # identifiers that are none of the above: a reader gap
    selector_only: bool = False      # a variable's label_values(selector, label)


def read_promql(expr: str) -> Query:
    lv = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", expr, re.S)
    if lv:                            # Grafana's variable query, not PromQL: read the selector
        q = read_promql(lv.group(1))
        return Query(expr, q.metrics, q.grouping | {lv.group(2)}, q.matched, q.rated, q.unknown,
                     selector_only=True)
    text = _STRING.sub('""', expr.replace("$__rate_interval", "5m").replace("$__interval", "1m"))
    text = re.sub(r"\$\{?\w+\}?", "0", text)            # dashboard variables outside strings
    grouping = {lab.strip() for _, labs in _GROUPING.findall(text) for lab in labs.split(",")
                if lab.strip()}
    text = _GROUPING.sub(" ", text)
    matched = {m.group(1) for block in _MATCHERS.findall(text)
               for m in _MATCHER_LABEL.finditer(block)}
    rated = set()
    for fn in ("rate", "increase", "irate"):
        for m in re.finditer(rf"\b{fn}\s*\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", text):
            rated.add(m.group(1))
    text = _RANGE.sub(" ", _MATCHERS.sub(" ", text))
    text = _DURATION.sub(" ", text)
    metrics, unknown = set(), set()
    for m in _IDENT.finditer(text):
        word = m.group(0)
        after = text[m.end():].lstrip()
        if word in KEYWORDS:
            continue
        if after.startswith("("):
            if word not in FUNCTIONS:
                unknown.add(word)
            continue
        if word.startswith("streamwatch_") or word in SYNTHETIC:
            metrics.add(word)
        elif not re.fullmatch(r"[eE]\d*|inf|nan|Inf|NaN", word):
            unknown.add(word)
    return Query(expr, frozenset(metrics), frozenset(grouping), frozenset(matched),
                 frozenset(rated), frozenset(unknown))


def dashboard_exprs(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target (rows included) and every query variable."""
    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for p in panels:
            for t in p.get("targets", []):
                yield f"panel {p['id']} {p['title']!r} {t['refId']}", t["expr"]
            yield from walk(p.get("panels", []))
    yield from walk(dash["panels"])
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            yield f"variable {var['name']}", q


def alert_hint_exprs() -> list[tuple[str, str]]:
    """The commented-out rules group of prometheus.yml, uncommented and read as YAML."""
    lines = PROMETHEUS.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# groups:")
    block = "\n".join(line[2:] for line in lines[start:] if line.startswith("# "))
    rules = yaml.safe_load(block)["groups"][0]["rules"]
    return [(f"alert {r['alert']}", r["expr"]) for r in rules]


# -- what the live service exposes --------------------------------------------------------
@dataclass(frozen=True)
class Exposition:
    series: dict[str, set[str]]      # sample name (with _total/_bucket/...) -> label names
    kinds: dict[str, str]            # sample name -> family type


def read_exposition(text: str) -> Exposition:
    series: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            series.setdefault(s.name, set()).update(s.labels)
            kinds[s.name] = fam.type
    return Exposition(series, kinds)


def problems(where: str, q: Query, exp: Exposition) -> list[str]:
    """Everything wrong with one query against the exposition (empty: fine)."""
    out = [f"{where}: cannot read {sorted(q.unknown)} in {q.expr!r}"] if q.unknown else []
    ours = q.metrics - SYNTHETIC
    for name in sorted(ours - set(exp.series)):
        out.append(f"{where}: {name} is not on /metrics")
    labels = set().union(*(exp.series.get(n, set()) for n in ours)) | TARGET_LABELS
    for label in sorted((q.grouping | q.matched) - labels):
        if not (q.metrics & SYNTHETIC):
            out.append(f"{where}: label {label!r} is on none of {sorted(ours)}")
    for name in sorted(q.rated & set(exp.kinds)):
        if exp.kinds[name] == "gauge":
            out.append(f"{where}: rate() over the gauge {name}")
    for name in sorted(ours & set(exp.kinds)):
        if exp.kinds[name] == "counter" and name not in q.rated and not q.selector_only:
            out.append(f"{where}: counter {name} used without rate()/increase()")
    return out


def _room_outage() -> list[bytes]:
    """A 30-minute room whose stream collapses at minute 20 (a level-1 tech incident)."""
    at = 20 * 60.0
    b = samples([Room("room-a", minutes=30, effects=[Effect("bitrate_kbps", at, at + 300, 0.1),
                                                     Effect("fps", at, at + 300, 0.2)]),
                 Room("room-b", minutes=30)])
    lines = [orjson.dumps({"stream": s, "metric": m, "ts": t, "value": v})
             for s, m, t, v in zip(b.streams, b.metrics, b.ts.tolist(), b.values.tolist())]
    return [b"\n".join(lines[i:i + 5000]) for i in range(0, len(lines), 5000)]


@pytest.fixture(scope="module")
def exposition(live_server_module: Callable[..., LiveServer]) -> Exposition:
    sim = SourceSettings(name="sim-one", kind="simulator", seed=3, rooms=1, minutes=5, speed=1.0)
    # a routed receiver and an escalation step, so that notification and escalation counters
    # have series (the receiver's port refuses: deliveries retry, counting is what matters)
    routing = RoutingSettings.model_validate({
        "receivers": [{"name": "oncall", "url": "http://127.0.0.1:9/hook"}],
        "route": {"receivers": ["oncall"]}})
    steps = [EscalationStep(team="tech", after=0.01, notify="oncall")]
    srv = live_server_module(sources=[sim], auth=with_tokens(ingest=INGEST_TOKEN),
                             routing=routing, escalation=steps)
    with httpx.Client(base_url=srv.url, timeout=10.0, headers=bearer(INGEST_TOKEN)) as http:
        for body in _room_outage():
            r = http.post("/v1/samples", content=body)
            assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
        bad = '{"stream":"room-b","metric":"viewers","ts":%f,"value":NaN}' % (time.time() - 5)
        assert http.post("/v1/samples", content=bad.encode()).json()["rejected"] == 1
        assert http.post("/v1/samples", content=b"[1,").status_code == 400
        assert httpx.post(f"{srv.url}/v1/samples", content=b"[]").status_code == 401

        def complete() -> Exposition | None:
            exp = read_exposition(http.get("/metrics").text)
            need = ("streamwatch_alert_events_total", "streamwatch_source_lag_seconds",
                    "streamwatch_auth_failures_total",
                    "streamwatch_samples_rejected_total", "streamwatch_requests_refused_total",
                    "streamwatch_notifications_total", "streamwatch_escalations_total")
            return exp if all(n in exp.series for n in need) else None
        return wait_until(complete, what="every metric family to have samples")


# -- the tests ----------------------------------------------------------------------------
def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= dash["schemaVersion"] <= 41 and dash["uid"] and dash["title"]
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    assert dash["__inputs"][0]["pluginId"] == "prometheus"
    # provisioned from file (no import step), the same name resolves through a variable
    ds_vars = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in ds_vars] == [("DS_PROMETHEUS", "prometheus")]
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
            assert p["targets"] and p.get("description"), p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${DS_PROMETHEUS}" and t["expr"].strip()
    # panels do not overlap: each grid cell belongs to at most one panel
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = " ".join(e for _, e in dashboard_exprs(dash))
    for needed in ("rate(streamwatch_samples_ingested_total",
                   "sum by (reason) (rate(streamwatch_samples_rejected_total",
                   "streamwatch_queue_depth_samples", "streamwatch_source_up",
                   "max by (source) (streamwatch_source_lag_seconds",
                   "sum by (level, status) (rate(streamwatch_alert_events_total",
                   "sum by (team) (rate(streamwatch_alert_events_total",
                   "sum by (level) (streamwatch_open_incidents",
                   "sum by (team) (streamwatch_open_incidents",
                   "histogram_quantile(0.5, sum by (le) (rate("
                   "streamwatch_detector_latency_seconds_bucket",
                   "histogram_quantile(0.99, sum by (le) (rate("
                   "streamwatch_detector_latency_seconds_bucket",
                   "streamwatch_websocket_clients",
                   "sum by (reason) (rate(streamwatch_auth_failures_total"):
        assert needed in exprs, needed


def test_every_dashboard_query_reads_metrics_the_service_exposes(exposition: Exposition) -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found, used = [], set()
    for where, expr in dashboard_exprs(dash):
        q = read_promql(expr)
        assert q.metrics, f"{where}: no metric in {expr!r}"
        used |= q.metrics
        found += problems(where, q, exposition)
    assert not found, "\n".join(found)
    # and the dashboard shows (nearly) everything: a new family should get a panel
    families = {n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
                for n in exposition.series}
    shown = {n.removesuffix("_bucket") for n in used}
    assert families - shown == set(), families - shown


def test_prometheus_alerting_hints_read_metrics_the_service_exposes(
        exposition: Exposition) -> None:
    found = []
    hints = alert_hint_exprs()
    assert len(hints) >= 5
    for where, expr in hints:
        found += problems(where, read_promql(expr), exposition)
    assert not found, "\n".join(found)


def test_prometheus_scrape_config_targets_metrics_every_15s() -> None:
    cfg = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    assert cfg["global"]["scrape_interval"] == "15s"
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "streamwatch"]
    assert job["metrics_path"] == "/metrics" and job["scrape_interval"] == "15s"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8080"]
    assert set(job["static_configs"][0]["labels"]) <= TARGET_LABELS


def test_the_checker_catches_a_broken_query(exposition: Exposition) -> None:
    """The checks above could fail: each kind of mistake is reported."""
    def issues(expr: str) -> str:
        return " | ".join(problems("t", read_promql(expr), exposition))
    assert issues("sum(rate(streamwatch_samples_ingested_total[5m]))") == ""
    assert "streamwatch_samples_ingest_total is not on" in issues(
        "rate(streamwatch_samples_ingest_total[5m])")
    assert "streamwatch_detector_latency_bucket is not on" in issues(
        "histogram_quantile(0.9, sum by (le) (rate(streamwatch_detector_latency_bucket[5m])))")
    assert "label 'region'" in issues("sum by (region) (streamwatch_open_incidents)")
    assert "label 'severity'" in issues('streamwatch_open_incidents{severity="1"}')
    assert "rate() over the gauge" in issues("rate(streamwatch_queue_depth_samples[5m])")
    assert "without rate()" in issues("sum(streamwatch_alert_events_total)")
    assert "cannot read ['quantile_over_tme']" in issues(
        "quantile_over_tme(0.9, streamwatch_queue_depth_samples[5m])")
    assert "cannot read ['streamwatch']" not in issues("streamwatch_websocket_clients")
