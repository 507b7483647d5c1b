"""Models of config/service.toml: what a deployment sets besides its detector rules."""
from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streamwatch.config.durations import Duration
from streamwatch.config.routing import RoutingSettings

__all__ = ["ServiceConfig", "IngestSettings", "GradingSettings", "ServerSettings",
           "FeedSettings", "SourceSettings", "StorageSettings", "AuthSettings", "TokenEntry",
           "Role", "ROLES", "token_digest", "WebhookSettings", "EscalationStep"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestSettings(_Section):
    """`[ingest]`: what a sample must be to be accepted, and how lateness and silence are
    judged (on event time, per stream)."""
    allowed_lateness: Duration = Field(default=30.0, description=(
        "samples further behind their stream's newest `ts` are dropped (counted as late)"))
    silence_after: Duration = Field(default=25.0, description=(
        "a live room with no sample for this long (event time) is an incident candidate"))
    max_labels: int = Field(default=16, ge=0, description=(
        "label pairs per sample; a sample with more is rejected"))
    max_label_len: int = Field(default=128, ge=1, description=(
        "characters per label key or value; a sample with a longer one is rejected"))
    future_skew: Duration = Field(default=300.0, description=(
        "samples further ahead of the server's clock are absurd and rejected"))
    max_streams: int = Field(default=50_000, ge=1, description=(
        "streams tracked at most; a sample of a new stream beyond it is rejected (reason "
        "`stream_limit`), samples of tracked streams are still accepted"))
    # one stream x a million metric names would grow the detector table (a row per stream x
    # metric) without bound; the catalogue has ~20 names, so 1,000 leaves room for custom ones
    max_metrics: int = Field(default=1_000, ge=1, description=(
        "metric names tracked at most; a sample of a new metric beyond it is rejected (reason "
        "`metric_limit`), samples of tracked metrics are still accepted"))


class GradingSettings(_Section):
    """`[grading]`: how impact moves an incident's level (DOMAIN.md): by one, and only at the
    extremes."""
    tiny_viewers: float = Field(default=100.0, ge=0, description=(
        "a room below both this many viewers and `tiny_gmv_per_min` is one level less severe"))
    tiny_gmv_per_min: float = Field(default=100.0, ge=0, description=(
        "GMV per minute (currency units) below which, with `tiny_viewers`, a room is tiny"))
    large_share: float = Field(default=0.30, gt=0, le=1, description=(
        "a room with this share of all viewers or of all GMV is one level more severe"))
    shared_rooms_level1: int = Field(default=2, ge=1, description=(
        "a `svc:*` failure echoed by this many rooms (orders stopping) is level 1"))


class ServerSettings(_Section):
    """`[server]`: where `serve` listens, and the limits of push ingestion."""
    host: str = Field(default="127.0.0.1", description=(
        "address `serve` listens on (`--host` overrides it)"))
    port: int = Field(default=8080, ge=0, le=65535, description=(
        "port `serve` listens on (`--port` overrides it)"))
    max_body_bytes: int = Field(default=8 << 20, ge=1024, description=(
        "larger push bodies are refused with 413"))
    max_samples_per_request: int = Field(default=100_000, ge=1, description=(
        "push bodies with more samples are refused with 413"))
    queue_max_samples: int = Field(default=2_000_000, ge=1000, description=(
        "samples waiting for the detector; beyond it push answers 429 (back-pressure) and "
        "pull sources wait"))
    retry_after_s: int = Field(default=1, ge=1, description="the `Retry-After` of a 429")
    metrics_public: bool = Field(default=True, description=(
        "`/metrics` needs no token (false: it needs the `viewer` role)"))
    # per-message deflate on the alert feed: off by default, it halves fan-out throughput
    # (measured ~14 vs ~6 us of server CPU per message) for a LAN ops room
    ws_compression: bool = Field(default=False, description=(
        "per-message deflate on the alert feed (costs about 2x server CPU per message)"))


class FeedSettings(_Section):
    """`[feed]`: the websocket alert feed (`WS /v1/alerts/stream`)."""
    replay_buffer: int = Field(default=10_000, ge=100, description=(
        "alert events kept so a reconnecting client can resume (`since=`)"))
    client_queue: int = Field(default=1_000, ge=10, description=(
        "events a slow client may lag behind before it is dropped (close code 4008)"))
    max_clients: int = Field(default=500, ge=1, description=(
        "feed clients at once; more are refused (close code 1013, try again later)"))


class StorageSettings(_Section):
    """Where `serve` keeps incidents, alert events and operator actions (store/sqlite.py);
    `--data-dir` overrides it. A relative path is taken from the working directory."""
    data_dir: str = Field(default="./data", min_length=1, description=(
        "directory of the SQLite file (WAL) with incidents, alert events, operator actions, "
        "silences and webhooks; `serve --data-dir DIR` overrides it"))
    # the sample journal (store/journal.py): accepted batches fsync'ed before the 2xx answer,
    # replayed after a crash on top of the last checkpoint of the detectors' state
    journal: bool = Field(default=True, description=(
        "accepted samples are fsync'ed to DATA_DIR/journal before the push is answered, and "
        "replayed after a crash (kill -9, power loss)"))
    checkpoint_interval: Duration = Field(default=60.0, gt=0, description=(
        "how often the detectors' state is saved (bounds the journal replayed after a crash)"))
    keep_resolved: int = Field(default=5_000, ge=10, description=(
        "resolved incidents also held in memory for the API and the page (open ones always "
        "are); older ones stay in the store, where reviews read them"))


class SourceSettings(_Section):
    """`[[sources]]` (in config/sources.toml or config/service.toml): one pull source, polled
    on its own clock - a room-stats JSON endpoint, a Prometheus exporter, or the simulator.
    config/sources.toml has a commented example of each kind."""
    name: str = Field(min_length=1, description="unique; shows in logs and on /metrics")
    kind: Literal["http_json", "prometheus", "simulator"] = Field(description=(
        "a JSON endpoint (samples, or room statistics read through `mapping`), a Prometheus "
        "exporter's text exposition, or the built-in simulator"))
    url: str = Field(default="", description="what is polled (http_json, prometheus)")
    interval: Duration = Field(default=5.0, description="time between polls")
    timeout: Duration = Field(default=2.0, description=(
        "deadline of one whole poll (connect + answer + body)"))
    jitter: float = Field(default=0.1, description=(
        "random spread of each interval and back-off, as a fraction (0.1 = +-10 %)"))
    max_backoff: Duration = Field(default=60.0, description=(
        "longest wait between retries of a failing source; waits double from `interval` on "
        "each failure in a row and return to `interval` on success"))
    stream: str = Field(default="", description=(
        "the stream id for samples whose data does not name one"))
    # http_json: {"field.path": "metric"}; prometheus: {"series_name": "metric"}
    mapping: dict[str, str] = Field(default_factory=dict, description=(
        "http_json: `{ \"dotted.path\" = target }`, target a metric name, \"stream\" or "
        "\"ts\", one `[]` in a path for the list of rooms; prometheus: `{ selector = metric }`, "
        "selector `name`, `name{label=\"value\"}` or `rate(...)`. Without it, http_json "
        "bodies must be samples"))
    stream_label: str = Field(default="stream", description=(
        "prometheus: the label naming the stream"))
    # simulator
    seed: int = Field(default=7, description="simulator: the session's random seed")
    rooms: int = Field(default=12, description="simulator: live rooms (plus shared services)")
    minutes: float = Field(default=240.0, description="simulator: length of the session")
    speed: float = Field(default=1.0, description=(
        "simulator: event-time seconds per wall second (1 = live)"))


Role = Literal["ingest", "viewer", "operator", "admin"]
ROLES: tuple[str, ...] = ("ingest", "viewer", "operator", "admin")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def token_digest(token: str) -> str:
    """The stored form of an API token: SHA-256 of its UTF-8 bytes, lowercase hex. Files hold
    only this (`printf %s TOKEN | sha256sum`), so a leaked config/ leaks no credential."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class TokenEntry(_Section):
    """One API token as config/ holds it: a role and the SHA-256 of the token, never the token."""
    role: Role = Field(description=(
        "ingest pushes samples; viewer reads; operator = viewer + ack/resolve/note/silences; "
        "admin = everything"))
    sha256: str = Field(description=(
        "SHA-256 of the token, 64 hex digits (`printf %s TOKEN | sha256sum`); never the token"))
    name: str = Field(default="", max_length=100, description=(
        "who holds it: shown as `by` / `acked_by` in incident timelines"))

    @model_validator(mode="before")
    @classmethod
    def _no_plaintext(cls, data: Any) -> Any:
        # checked at model level so that an error never echoes the offending value: a token
        # pasted where its hash belongs must not end up in `streamwatch check`'s output
        if isinstance(data, dict):
            if {"token", "secret", "plaintext"} & set(data):
                raise ValueError("plaintext tokens are not allowed in files: give "
                                 "sha256 = the SHA-256 hex of the token (or use the "
                                 "STREAMWATCH_API_TOKENS environment variable)")
            digest = data.get("sha256")
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
                raise ValueError("sha256 must be the 64 hex digits of the token's SHA-256 "
                                 "(printf %s TOKEN | sha256sum)")
            data = {**data, "sha256": digest.lower()}
        return data


class AuthSettings(_Section):
    """Access control (CONTRACTS §5). Tokens come from `[[auth.tokens]]` here and from env
    `STREAMWATCH_API_TOKENS` (`role:token,...`, hashed at load). `insecure_no_auth` only allows
    running *without* tokens (everything open); once any token is configured, tokens are
    enforced whatever it says: a stray flag never silently opens a protected service."""
    tokens: list[TokenEntry] = Field(default_factory=list)
    insecure_no_auth: bool = Field(default=False, description=(
        "true: `serve` may run with no token at all, everything open (it warns at start); "
        "ignored once any token is configured"))


class WebhookSettings(_Section):
    """Outgoing webhooks (notify/webhook.py). A target's host must be in `allowed_hosts` (exact
    host names or addresses, `*.example.com` for subdomains; env STREAMWATCH_WEBHOOK_ALLOWED_HOSTS
    replaces the list): an admin token must not turn the service into a probe of the network."""
    allowed_hosts: list[str] = Field(default_factory=list, description=(
        "hosts webhooks may target: exact names or addresses, `*.example.com` for subdomains; "
        "env STREAMWATCH_WEBHOOK_ALLOWED_HOSTS (comma-separated) replaces it; empty: no "
        "webhook can be added"))
    timeout: Duration = Field(default=5.0, gt=0, description="per delivery attempt")
    max_attempts: int = Field(default=8, ge=1, le=100, description=(
        "attempts before a delivery becomes a dead letter (`GET /v1/webhooks/dead-letters`)"))
    backoff_base: Duration = Field(default=1.0, gt=0, description=(
        "retries wait min(backoff_max, backoff_base x 2^(n-1)) x a random 0.5..1"))
    backoff_max: Duration = Field(default=300.0, gt=0, description=(
        "longest wait between attempts (also caps a receiver's `Retry-After`)"))
    max_pending: int = Field(default=10_000, ge=1, description=(
        "deliveries queued per webhook; beyond it new ones become dead letters"))
    dead_letters: int = Field(default=1_000, ge=1, description="dead letters kept (the newest)")
    external_url: str = Field(default="", description=(
        "this service's public base URL: the Alertmanager format's `externalURL` and each "
        "alert's `generatorURL`"))

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return [h.strip().lower().strip("[]") for h in v if h.strip()]


class EscalationStep(_Section):
    """`[[escalation]]`: an incident of `team` still not acknowledged `after` its first alert
    (wall clock) notifies `notify` - a webhook id, or "command" (every webhook subscribed to the
    command team). A team's steps fire in order of `after` (incidents/escalate.py)."""
    team: Literal["live_ops", "tech", "customer_service", "logistics", "command"] = Field(
        description="the team whose unacknowledged incidents this step watches")
    after: Duration = Field(gt=0, description=(
        "how long after the incident's first alert (wall clock) without an ack this step "
        "notifies"))
    notify: str = Field(min_length=1, max_length=100, description=(
        "a webhook id (from `POST /v1/webhooks`), or \"command\": every webhook whose "
        "`teams` include command"))


class ServiceConfig(_Section):
    """config/service.toml, one table per field; config/reference.py renders the README's
    configuration reference from these models, recursively, descriptions included."""
    ingest: IngestSettings = IngestSettings()
    grading: GradingSettings = GradingSettings()
    server: ServerSettings = ServerSettings()
    feed: FeedSettings = FeedSettings()
    storage: StorageSettings = StorageSettings()
    auth: AuthSettings = AuthSettings()
    webhooks: WebhookSettings = WebhookSettings()
    sources: list[SourceSettings] = Field(default_factory=list)
    escalation: list[EscalationStep] = Field(default_factory=list)
    routing: RoutingSettings = Field(default_factory=RoutingSettings, description=(
        "config/routing.toml: receivers and the routing tree (incidents/route.py)"))
