"""Models of config/routing.toml: receivers and the routing tree (Alertmanager's, trimmed).

A route matches an alert event on its team, level, incident type, metric and stream id (glob
patterns: `douyin:*` is every Douyin room); children are tried in order and the first match wins
(unless it says `continue = true`); a route that sets nothing inherits its parent's receivers,
`repeat_interval` and `send_resolved`. Receivers are webhooks defined here, named, with their
secret taken from an environment variable (never written in a file).
"""
from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streamwatch.config.durations import OptionalDuration

__all__ = ["RoutingSettings", "Receiver", "Route", "Match"]

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _listify(v: object) -> object:
    return [v] if isinstance(v, (str, int)) else v


class Match(_Model):
    """Every condition given must hold (absent: any). Lists mean "one of"."""
    team: list[Literal["live_ops", "tech", "customer_service", "logistics", "command"]] | None = \
        Field(default=None, description="the incident's team(s)")
    level: list[Literal[1, 2, 3, 4]] | None = Field(default=None, description="exact level(s)")
    min_level: int | None = Field(default=None, ge=1, le=4,
                                  description="levels 1..N (N and more severe)")
    incident_type: list[str] | None = Field(default=None, description="incident type(s)")
    metric: list[str] | None = Field(default=None, description="metric name(s)")
    stream: list[str] | None = Field(default=None,
                                     description="stream id glob pattern(s), e.g. douyin:*")
    labels: dict[str, str] | None = Field(default=None, description=(
        "the stream's sample labels (the newest seen), each a glob pattern, e.g. "
        "{ platform = \"douyin\", shop = \"flagship-*\" }"))

    @field_validator("team", "level", "incident_type", "metric", "stream", mode="before")
    @classmethod
    def _lists(cls, v: object) -> object:
        return _listify(v)

    def matches(self, e: dict[str, Any], labels: dict[str, str] | None = None) -> bool:
        if self.labels is not None and not all(
                fnmatchcase((labels or {}).get(k, ""), v) for k, v in self.labels.items()):
            return False
        return ((self.team is None or e["team"] in self.team)
                and (self.level is None or e["level"] in self.level)
                and (self.min_level is None or e["level"] <= self.min_level)
                and (self.incident_type is None or e["incident_type"] in self.incident_type)
                and (self.metric is None or e["metric"] in self.metric)
                and (self.stream is None or any(fnmatchcase(e["stream"], p)
                                                for p in self.stream)))


class Route(_Model):
    """A node of the routing tree: the events it matches go to its receivers (or, when a
    child matches too, to the child's)."""
    match: Match = Field(default_factory=Match, description="which events this route takes")
    receivers: list[str] | None = Field(default=None,
                                        description="receiver names (absent: the parent's)")
    continue_: bool = Field(default=False, alias="continue",
                            description="after matching, try the next sibling routes too")
    repeat_interval: OptionalDuration = Field(default=None, gt=0, description=(
        "re-send an open, unacknowledged incident this often (absent: the parent's)"))
    send_resolved: bool | None = Field(default=None,
                                       description="notify when the incident resolves")
    routes: list[Route] = Field(default_factory=list, description="child routes, in order")


class Receiver(_Model):
    """A named webhook the routing tree sends to."""
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="what routes call it; also its webhook id in the API")
    url: str = Field(min_length=1, description="http(s) URL; its host must be allow-listed")
    format: Literal["streamwatch", "alertmanager"] = Field(
        default="streamwatch", description="payload: one alert event, or Alertmanager v4")
    secret_env: str = Field(default="", description=(
        "environment variable holding the HMAC secret (empty: a random one per start)"))

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class RoutingSettings(_Model):
    """config/routing.toml: `[[receivers]]` and the tree under `[route]`."""
    receivers: list[Receiver] = Field(default_factory=list,
                                      description="named webhooks routes send to")
    route: Route = Field(default_factory=Route, description="the root of the routing tree")

    @model_validator(mode="after")
    def _known_receivers(self) -> RoutingSettings:
        names = [r.name for r in self.receivers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"receiver names must be unique: {', '.join(dup)}")
        unknown: list[str] = []

        def walk(route: Route, path: str) -> None:
            for n in route.receivers or []:
                if n not in names and n != "command":
                    unknown.append(f"{path}.receivers: {n!r}")
            for k, child in enumerate(route.routes):
                walk(child, f"{path}.routes[{k}]")
        walk(self.route, "route")
        if unknown:
            raise ValueError("unknown receiver (define it under [[receivers]]): "
                             + "; ".join(unknown))
        return self
