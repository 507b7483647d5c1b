"""create_app(config) -> FastAPI: routes, lifespan (service, pull sources), /metrics.

Each route module owns one face of CONTRACTS.md §5; this module only composes them. The lifespan
starts the Service (queue + consumer) and the configured pull sources, and on shutdown stops the
sources, drains every accepted sample through the pipeline and flushes the outputs.
"""
from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from streamwatch import __version__
from streamwatch.api import (feed, health, incidents, page, reports, samples, silences, streams,
                            webhooks)
from streamwatch.api.auth import AUTH_RESPONSES, Authenticator, install_log_redaction, require
from streamwatch.config.load import Config
from streamwatch.incidents.escalate import Escalator
from streamwatch.incidents.route import Router
from streamwatch.notify.webhook import WebhookDispatcher
from streamwatch.service import Service

__all__ = ["create_app"]


def create_app(config: Config, service: Service | None = None) -> FastAPI:
    svc = service or Service(config)
    hooks = WebhookDispatcher(svc.config.service.webhooks, started_at=_started_at(svc))
    escalator = Escalator(svc.config.service.escalation, hooks.send, _status_of(svc),
                          clock=svc.clock, record=svc.annotate)
    router = Router(svc.config.service.routing, hooks.deliver, _status_of(svc), clock=svc.clock,
                    labels_of=svc.stream_labels.get)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.open()                    # store + journal: state rebuilt, not yet published
        hooks.configure(config.service.routing.receivers, os.environ)
        hooks.attach(svc.store)       # restores webhooks and pending deliveries
        unsubscribe = svc.subscribe(hooks)
        escalator.attach(svc.store)   # resumes the incidents it was watching before a restart
        unwatch = svc.subscribe(escalator.observe)
        unroute = svc.subscribe(router.observe)
        await svc.start()             # publishes what a crash recovery regenerated
        await hooks.start()
        svc.spawn(escalator.run(), "streamwatch-escalation")
        svc.spawn(router.run(), "streamwatch-routing")
        from streamwatch.ingest.pull import start_sources
        start_sources(svc, config.service.sources)
        try:
            yield
        finally:
            await hooks.stop()        # a short grace, then workers stop; the store stays open
            await svc.stop()          # drains: the last events are queued (and stored) for
            unsubscribe()             # delivery after the restart
            unwatch()
            unroute()

    app = FastAPI(title="streamwatch", version=__version__, lifespan=lifespan,
                  description="Real-time monitoring for live-commerce streams.")
    app.state.service = svc
    app.state.webhooks = hooks
    app.state.escalator = escalator
    app.state.router = router
    app.state.auth = Authenticator(config.service.auth)
    install_log_redaction()
    # Who may call what (CONTRACTS §5). Public: /, /static/*, /docs, /openapi.json, /healthz,
    # /readyz and, per [server] metrics_public, /metrics. Write routes inside a router add their
    # own stricter role (incidents: operator for ack/resolve/note; silences: operator to
    # create/expire); the feed's websocket checks `viewer` itself (a websocket refusal is a
    # close code, not a status).
    # tests/api/test_auth.py walks app.routes: a new route outside this list must answer 401.
    app.include_router(health.router)
    app.include_router(page.router)
    app.include_router(samples.router, dependencies=[Depends(require("ingest"))],
                       responses=AUTH_RESPONSES)
    app.include_router(incidents.router, dependencies=[Depends(require("viewer"))],
                       responses=AUTH_RESPONSES)
    app.include_router(streams.router, dependencies=[Depends(require("viewer"))],
                       responses=AUTH_RESPONSES)
    app.include_router(reports.router, dependencies=[Depends(require("viewer"))],
                       responses=AUTH_RESPONSES)
    app.include_router(silences.router, dependencies=[Depends(require("viewer"))],
                       responses=AUTH_RESPONSES)
    app.include_router(webhooks.router, dependencies=[Depends(require("admin"))],
                       responses=AUTH_RESPONSES)
    app.include_router(feed.router)
    feed.install(app, svc)
    from streamwatch.exporter import mount_metrics
    mount_metrics(app, svc)
    return app


def _status_of(svc: Service) -> Callable[[str], str | None]:
    """An incident's status (open, acked, resolved), None once it is no longer held."""
    def lookup(incident_id: str) -> str | None:
        inc = svc.incidents.get(incident_id)
        return str(inc["status"]) if inc else None
    return lookup


def _started_at(svc: Service) -> Callable[[str], float | None]:
    """When an incident began (Alertmanager's `startsAt` of a resolved alert), if still held."""
    def lookup(incident_id: str) -> float | None:
        inc = svc.incidents.get(incident_id)
        return float(inc["started_at"]) if inc else None
    return lookup
