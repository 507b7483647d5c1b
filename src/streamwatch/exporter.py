"""/metrics: the service's own health in Prometheus exposition format (CONTRACTS §5).

Nothing here counts anything: the Service, the pipeline and the pull sources keep their plain
counters (`service.stats`, `pipeline.stats`, `service.sources`), and one custom collector reads
them at scrape time (prometheus/client_python's custom-collector pattern). So the hot path never
touches a prometheus object, and the exposition can never disagree with what the REST API says.
Each app gets its own `CollectorRegistry` (never the process-global one): two apps in one process
(tests, embedding) do not see each other's numbers.

The route is an `async def`, so the collector runs on the event loop thread, the same thread that
mutates the state it reads: a scrape sees a consistent moment, never a half-applied batch.
Naming: `_total` only on counters, units in the name (`_seconds`, `_samples`).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, get_args

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.registry import Collector

from streamwatch.events import AlertEvent
from streamwatch.service import Histogram, Service

__all__ = ["mount_metrics", "ServiceCollector", "build_registry"]

_TEAMS: tuple[str, ...] = get_args(AlertEvent.model_fields["team"].annotation)
_LEVELS: tuple[int, ...] = get_args(AlertEvent.model_fields["level"].annotation)
_UP = ("ok", "ended")              # SourceState.state values that count as up


class ServiceCollector(Collector):
    """Reads the Service (and the app's feed hub, when there is one) at each scrape."""

    def __init__(self, service: Service, app: FastAPI | None = None) -> None:
        self.service = service
        self.app = app

    def collect(self) -> Iterator[Metric]:
        yield from self._ingest()
        yield from self._alerts()
        yield from self._sources()
        yield from self._state()
        yield from self._store()
        yield from self._auth()
        yield from self._webhooks()

    def _ingest(self) -> Iterator[Metric]:
        s, st = self.service, self.service.stats
        yield CounterMetricFamily("streamwatch_samples_ingested_total",
                                  "Samples accepted into the queue (push and pull).",
                                  value=st.samples_accepted)
        yield _counter_by("streamwatch_samples_rejected_total",
                          "Samples rejected one by one at ingestion, by reason.",
                          "reason", st.samples_rejected)
        yield _counter_by("streamwatch_requests_refused_total",
                          "Push requests (or source batches) refused as a whole, by cause.",
                          "cause", st.requests_refused)
        ps = s.pipeline.stats
        dropped = CounterMetricFamily(
            "streamwatch_samples_discarded_total",
            "Accepted samples the pipeline did not use (duplicates, too late), by reason.",
            labels=["reason"])
        dropped.add_metric(["duplicate"], ps.duplicates)
        dropped.add_metric(["late"], ps.late)
        yield dropped
        yield CounterMetricFamily("streamwatch_batches_processed_total",
                                  "Pipeline runs of the consumer (queued batches coalesced).",
                                  value=st.batches)
        yield GaugeMetricFamily("streamwatch_queue_depth_samples",
                                "Samples accepted and waiting for the pipeline.", value=s.queued)
        yield GaugeMetricFamily("streamwatch_queue_capacity_samples",
                                "Queue bound; pushes beyond it get 429.", value=s.max_queued)
        yield _histogram("streamwatch_batch_latency_seconds",
                         "Time from a batch's acceptance to the end of its processing.",
                         st.batch_latency)

    def _alerts(self) -> Iterator[Metric]:
        s, st = self.service, self.service.stats
        events = CounterMetricFamily("streamwatch_alert_events_total",
                                     "Alert events emitted, by level, team and status.",
                                     labels=["level", "team", "status"])
        for (level, team, status), n in sorted(st.events.items()):
            events.add_metric([str(level), team, status], n)
        yield events
        open_ = {(lv, tm): 0 for lv in _LEVELS for tm in _TEAMS}
        for inc in s.incidents.open():
            key = (inc["level"], inc["team"])
            open_[key] = open_.get(key, 0) + 1
        gauge = GaugeMetricFamily("streamwatch_open_incidents",
                                  "Incidents currently open, by level and team.",
                                  labels=["level", "team"])
        for (lv, tm), n in sorted(open_.items()):
            gauge.add_metric([str(lv), tm], n)
        yield gauge
        yield _histogram("streamwatch_detector_latency_seconds",
                         "Time from a sample's acceptance to the alert event it caused.",
                         st.alert_latency)
        yield CounterMetricFamily("streamwatch_silenced_events_total",
                                  "Alert events that matched an active silence: recorded and "
                                  "shown, not paged (webhooks skip them).",
                                  value=st.silenced_events)
        yield GaugeMetricFamily("streamwatch_event_log_events",
                                "Alert events held for feed resumes (since=).",
                                value=len(s.log))

    def _sources(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("streamwatch_source_up",
                               "1 while a pull source's last poll succeeded (or its finite "
                               "session ended normally), 0 while starting or failing.",
                               labels=["source", "kind"])
        lag = GaugeMetricFamily("streamwatch_source_lag_seconds",
                                "Wall clock minus the newest sample time of the last good poll.",
                                labels=["source"])
        samples = CounterMetricFamily("streamwatch_source_samples_total",
                                      "Samples a pull source delivered.", labels=["source"])
        failures = CounterMetricFamily("streamwatch_source_failures_total",
                                       "Failed polls of a pull source.", labels=["source"])
        for src in self.service.sources:
            up.add_metric([src.name, src.kind], 1.0 if src.state in _UP else 0.0)
            if src.lag_s is not None and math.isfinite(src.lag_s):
                lag.add_metric([src.name], src.lag_s)
            samples.add_metric([src.name], src.samples)
            # a cumulative count if the source keeps one; consecutive failures reset on success,
            # so they cannot stand in for a counter
            total = getattr(src, "failures", None)
            if total is not None:
                failures.add_metric([src.name], total)
        yield from (up, lag, samples, failures)

    def _state(self) -> Iterator[Metric]:
        table = self.service.pipeline.table
        hub = getattr(self.app.state, "feed_hub", None) if self.app is not None else None
        yield GaugeMetricFamily("streamwatch_websocket_clients",
                                "Clients connected to the alert feed.",
                                value=getattr(hub, "client_count", 0) or 0)
        # streams with an admitted sample (names interned for refused bodies do not count)
        newest = table.stream_newest[: table.n_streams]
        yield GaugeMetricFamily("streamwatch_streams_tracked", "Streams the pipeline tracks.",
                                value=int(np.isfinite(newest).sum()))
        # metric names with a series, likewise (ingest.max_metrics bounds them); O(series)
        metric_of_row = table.row_metric[: len(table)]
        yield GaugeMetricFamily("streamwatch_metrics_tracked",
                                "Metric names the pipeline tracks.",
                                value=int(np.count_nonzero(np.bincount(metric_of_row)))
                                if len(metric_of_row) else 0)
        yield GaugeMetricFamily("streamwatch_series_tracked",
                                "(stream, metric) series the pipeline tracks.",
                                value=len(table.rows))

    def _store(self) -> Iterator[Metric]:
        s, st = self.service, self.service.stats
        yield GaugeMetricFamily("streamwatch_store_up",
                                "1 while alert events, incidents and actions are being stored; 0 "
                                "while writes fail (kept in memory and retried) or the store "
                                "could not be opened.",
                                value=1.0 if s.store is not None and s.store_error is None
                                else 0.0)
        yield CounterMetricFamily("streamwatch_store_errors_total",
                                  "Failed writes to the store (locked, full, corrupt...).",
                                  value=st.store_errors)
        yield GaugeMetricFamily("streamwatch_store_pending",
                                "Alert events and operator actions waiting to be stored.",
                                value=s.store_pending)
        yield CounterMetricFamily("streamwatch_store_dropped_events_total",
                                  "Alert events never stored: the store stayed down past the "
                                  "in-memory bound.", value=st.store_dropped)
        yield _histogram("streamwatch_store_commit_seconds",
                         "Time to write one batch of alert events, incidents and actions to "
                         "the store, on the event loop (everything waits for it).",
                         st.store_commit_seconds)
        c = s.checkpointer                    # None: memory only (no data dir): all 0
        yield GaugeMetricFamily("streamwatch_journal_up",
                                "1 while accepted samples are journaled before the push is "
                                "answered; 0 while the journal cannot be written (pushes 503) "
                                "or there is none (no data dir: memory only).",
                                value=1.0 if c is not None and c.healthy else 0.0)
        yield CounterMetricFamily("streamwatch_journal_samples_total",
                                  "Samples written to the journal.",
                                  value=c.logged_samples if c else 0)
        yield CounterMetricFamily("streamwatch_journal_checkpoints_total",
                                  "Checkpoints of the detectors' state written.",
                                  value=c.checkpoints if c else 0)
        yield CounterMetricFamily("streamwatch_journal_errors_total",
                                  "Failed journal or checkpoint writes.",
                                  value=c.write_errors if c else 0)
        yield _histogram("streamwatch_journal_append_seconds",
                         "Time from writing a journal entry (a consumer round, or a manual "
                         "resolve) until it is fsync'ed: pushes are answered after it, alerts "
                         "do not wait for it; disk latency shows here first.",
                         c.append_seconds if c else Histogram())
        yield _histogram("streamwatch_journal_write_seconds",
                         "Time to encode and write one journal entry, on the consumer's path "
                         "(detection waits for this, not for the fsync).",
                         c.write_seconds if c else Histogram())
        yield _histogram("streamwatch_journal_checkpoint_seconds",
                         "Time to write and fsync a checkpoint (in a worker thread).",
                         c.checkpoint_seconds if c else Histogram())
        yield CounterMetricFamily("streamwatch_journal_replayed_samples_total",
                                  "Samples replayed from the journal at start (after a crash).",
                                  value=c.replayed_samples if c else 0)

    def _auth(self) -> Iterator[Metric]:
        auth = getattr(self.app.state, "auth", None) if self.app is not None else None
        failures = getattr(auth, "failures", None) or {}
        fam = CounterMetricFamily("streamwatch_auth_failures_total",
                                  "Requests and websockets refused by access control: missing "
                                  "or unknown token (401/4401), role not held (403/4403).",
                                  labels=["reason"])
        for reason in ("missing", "unknown", "forbidden"):
            fam.add_metric([reason], failures.get(reason, 0))
        yield fam

    def _webhooks(self) -> Iterator[Metric]:
        hooks = getattr(self.app.state, "webhooks", None) if self.app is not None else None
        st = getattr(hooks, "stats", None)
        fam = CounterMetricFamily("streamwatch_webhook_deliveries_total",
                                  "Webhook delivery outcomes: delivered (2xx), retry (an "
                                  "attempt failed, another follows), dead (given up on).",
                                  labels=["result"])
        for result, n in (("delivered", getattr(st, "delivered", 0)),
                          ("retry", getattr(st, "retried", 0)),
                          ("dead", getattr(st, "dead", 0))):
            fam.add_metric([result], n)
        yield fam
        yield GaugeMetricFamily("streamwatch_webhook_dead_letters",
                                "Dead-lettered webhook deliveries held for GET "
                                "/v1/webhooks/dead-letters.",
                                value=len(hooks.dead_letters) if hooks is not None else 0)
        yield GaugeMetricFamily("streamwatch_webhook_pending",
                                "Webhook deliveries queued or being retried.",
                                value=hooks.pending if hooks is not None else 0)
        yield from self._routing()

    def _routing(self) -> Iterator[Metric]:
        state = self.app.state if self.app is not None else None
        router = getattr(state, "router", None)
        fam = CounterMetricFamily("streamwatch_notifications_total",
                                  "Notifications the routing tree sent, by receiver and kind "
                                  "(first, regraded, resolved, repeat).",
                                  labels=["receiver", "kind"])
        for (receiver, kind), n in sorted(getattr(router, "stats", {}).items()):
            fam.add_metric([receiver, kind], n)
        yield fam
        yield CounterMetricFamily("streamwatch_notifications_folded_total",
                                  "Alert events not sent again: same incident, same level "
                                  "(grouping).", value=getattr(router, "folded", 0))
        esc = getattr(state, "escalator", None)
        fam = CounterMetricFamily("streamwatch_escalations_total",
                                  "Escalation steps notified (incident not acknowledged in "
                                  "time; level1 = the command center at once), by team, level "
                                  "and step.", labels=["team", "level", "step"])
        for (team, level, step), n in sorted(getattr(esc, "steps", {}).items()):
            fam.add_metric([team, str(level), step], n)
        yield fam


def _counter_by(name: str, doc: str, label: str, counts: Any) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=[label])
    for key, n in sorted(counts.items()):
        fam.add_metric([str(key)], n)
    return fam


def _histogram(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
    """Our fixed-bucket counts (per bucket) -> Prometheus' cumulative `le` buckets."""
    cumulative, acc = [], 0
    for bound, n in zip((*map(_le, h.buckets), "+Inf"), h.counts):
        acc += n
        cumulative.append((bound, acc))
    return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=h.total)


def _le(bound: float) -> str:
    return repr(float(bound))


def build_registry(service: Service, app: FastAPI | None = None) -> CollectorRegistry:
    """A fresh registry holding only this service's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(service, app))
    return registry


def mount_metrics(app: FastAPI, service: Service) -> None:
    """Add GET /metrics to `app`, served from its own registry; public unless
    `[server] metrics_public = false`, then it needs a `viewer` token like any read."""
    from streamwatch.api.auth import require
    registry = build_registry(service, app)
    public = service.config.service.server.metrics_public
    app.state.metrics_registry = registry

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=True,
                      tags=["health"], summary="Prometheus exposition of streamwatch_* metrics",
                      response_class=Response,
                      dependencies=[] if public else [Depends(require("viewer"))])
