"""Models of config/service.toml: what a deployment sets besides its detector rules."""
from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streamwatch.config.durations import parse_duration

__all__ = ["ServiceConfig", "IngestSettings", "GradingSettings", "ServerSettings",
           "FeedSettings", "SourceSettings", "StorageSettings", "AuthSettings", "TokenEntry",
           "Role", "ROLES", "token_digest", "WebhookSettings", "EscalationStep"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestSettings(_Section):
    allowed_lateness: float = 30.0
    silence_after: float = 25.0
    max_labels: int = Field(default=16, ge=0)
    max_label_len: int = Field(default=128, ge=1)
    future_skew: float = 300.0

    @field_validator("allowed_lateness", "silence_after", "future_skew", mode="before")
    @classmethod
    def _dur(cls, v: object) -> float:
        return parse_duration(v)


class GradingSettings(_Section):
    tiny_viewers: float = Field(default=100.0, ge=0)
    tiny_gmv_per_min: float = Field(default=100.0, ge=0)
    large_share: float = Field(default=0.30, gt=0, le=1)
    shared_rooms_level1: int = Field(default=2, ge=1)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=8 << 20, ge=1024)       # larger bodies: 413
    max_samples_per_request: int = Field(default=100_000, ge=1)
    queue_max_samples: int = Field(default=2_000_000, ge=1000)  # back-pressure bound: 429
    retry_after_s: int = Field(default=1, ge=1)
    metrics_public: bool = True                                 # /metrics without a token
    # per-message deflate on the alert feed: off by default, it halves fan-out throughput
    # (measured ~14 vs ~6 us of server CPU per message) for a LAN ops room
    ws_compression: bool = False


class FeedSettings(_Section):
    replay_buffer: int = Field(default=10_000, ge=100)   # events kept for `since=` resumes
    client_queue: int = Field(default=1_000, ge=10)      # events a client may lag before dropped
    max_clients: int = Field(default=500, ge=1)


class StorageSettings(_Section):
    """Where `serve` keeps incidents, alert events and operator actions (store/sqlite.py);
    `--data-dir` overrides it. A relative path is taken from the working directory."""
    data_dir: str = Field(default="./data", min_length=1)


class SourceSettings(_Section):
    """One pull source: a room-stats JSON endpoint, a Prometheus exporter, or the simulator."""
    name: str = Field(min_length=1)
    kind: Literal["http_json", "prometheus", "simulator"]
    url: str = ""
    interval: float = 5.0
    timeout: float = 2.0
    jitter: float = 0.1                  # fraction of the interval
    max_backoff: float = 60.0
    stream: str = ""                     # default stream for samples that do not name one
    # http_json: {"field.path": "metric"}; prometheus: {"series_name": "metric"}
    mapping: dict[str, str] = Field(default_factory=dict)
    stream_label: str = "stream"         # prometheus: the label naming the stream
    # simulator
    seed: int = 7
    rooms: int = 12
    minutes: float = 240.0
    speed: float = 1.0                   # event-time seconds per wall second

    @field_validator("interval", "timeout", "max_backoff", mode="before")
    @classmethod
    def _dur(cls, v: object) -> float:
        return parse_duration(v)


Role = Literal["ingest", "viewer", "operator", "admin"]
ROLES: tuple[str, ...] = ("ingest", "viewer", "operator", "admin")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def token_digest(token: str) -> str:
    """The stored form of an API token: SHA-256 of its UTF-8 bytes, lowercase hex. Files hold
    only this (`printf %s TOKEN | sha256sum`), so a leaked config/ leaks no credential."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class TokenEntry(_Section):
    """One API token as config/ holds it: a role and the SHA-256 of the token, never the token."""
    role: Role
    sha256: str
    name: str = Field(default="", max_length=100)   # who holds it (shown as `acked_by`)

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
    insecure_no_auth: bool = False


class WebhookSettings(_Section):
    """Outgoing webhooks (notify/webhook.py). A target's host must be in `allowed_hosts` (exact
    host names or addresses, `*.example.com` for subdomains; env STREAMWATCH_WEBHOOK_ALLOWED_HOSTS
    replaces the list): an admin token must not turn the service into a probe of the network."""
    allowed_hosts: list[str] = Field(default_factory=list)
    timeout: float = Field(default=5.0, gt=0)            # per delivery attempt
    max_attempts: int = Field(default=8, ge=1, le=100)   # then the delivery is a dead letter
    backoff_base: float = Field(default=1.0, gt=0)       # first retry after ~this, then doubling
    backoff_max: float = Field(default=300.0, gt=0)      # longest wait between attempts
    max_pending: int = Field(default=10_000, ge=1)       # per webhook; beyond it: dead letters
    dead_letters: int = Field(default=1_000, ge=1)       # dead letters kept (newest)
    external_url: str = ""                               # Alertmanager `externalURL`

    @field_validator("timeout", "backoff_base", "backoff_max", mode="before")
    @classmethod
    def _dur(cls, v: object) -> float:
        return parse_duration(v)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return [h.strip().lower().strip("[]") for h in v if h.strip()]


class EscalationStep(_Section):
    """`[[escalation]]`: an incident of `team` still not acknowledged `after` its first alert
    (wall clock) notifies `notify` - a webhook id, or "command" (every webhook subscribed to the
    command team). A team's steps fire in order of `after` (incidents/escalate.py)."""
    team: Literal["live_ops", "tech", "customer_service", "logistics", "command"]
    after: float = Field(gt=0)
    notify: str = Field(min_length=1, max_length=100)

    @field_validator("after", mode="before")
    @classmethod
    def _dur(cls, v: object) -> float:
        return parse_duration(v)


class ServiceConfig(_Section):
    ingest: IngestSettings = IngestSettings()
    grading: GradingSettings = GradingSettings()
    server: ServerSettings = ServerSettings()
    feed: FeedSettings = FeedSettings()
    storage: StorageSettings = StorageSettings()
    auth: AuthSettings = AuthSettings()
    webhooks: WebhookSettings = WebhookSettings()
    sources: list[SourceSettings] = Field(default_factory=list)
    escalation: list[EscalationStep] = Field(default_factory=list)
