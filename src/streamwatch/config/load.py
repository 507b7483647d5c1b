"""Read config/ and detectors/, overlay STREAMWATCH_* environment variables, or say what is wrong.

Loaded once by the CLI and passed down (never a module-level singleton). Every problem is
collected, not just the first, each as `file: key path = value: why`, so `streamwatch check` can
list them all at once. Without a directory, the defaults shipped inside the package are used.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from streamwatch.assess.grade import GradePolicy
from streamwatch.config.rules import Rule, format_validation_error, load_rules_file
from streamwatch.config.schema import ServiceConfig
from streamwatch.exceptions import ConfigError

__all__ = ["Config", "load_config", "default_dirs", "ENV_PREFIX", "TOKENS_ENV",
           "MIN_TOKEN_CHARS", "WEBHOOK_HOSTS_ENV"]

ENV_PREFIX = "STREAMWATCH_"
TOKENS_ENV = "STREAMWATCH_API_TOKENS"
WEBHOOK_HOSTS_ENV = "STREAMWATCH_WEBHOOK_ALLOWED_HOSTS"   # comma-separated; replaces the list
MIN_TOKEN_CHARS = 16          # shorter tokens can be guessed; `secrets.token_urlsafe(24)` is 32
_PACKAGED = Path(__file__).resolve().parent.parent / "defaults"


@dataclass(frozen=True, slots=True)
class Config:
    service: ServiceConfig
    rules: list[Rule]
    config_dir: Path
    detectors_dir: Path

    def pipeline_settings(self):  # type: ignore[no-untyped-def]
        from streamwatch.pipeline import PipelineSettings
        g = self.service.grading
        return PipelineSettings(
            allowed_lateness=self.service.ingest.allowed_lateness,
            silence_after=self.service.ingest.silence_after,
            grade=GradePolicy(g.tiny_viewers, g.tiny_gmv_per_min, g.large_share,
                              g.shared_rooms_level1))


def default_dirs() -> tuple[Path, Path]:
    return _PACKAGED / "config", _PACKAGED / "detectors"


def _env_overlay(data: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> None:
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        if section not in ServiceConfig.model_fields:
            continue   # other STREAMWATCH_* variables (tokens, allow-lists) belong elsewhere
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            problems.append(f"env {name}: section {section} is not a table")
            continue
        data[section][key] = _coerce(value)


def _coerce(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _with_env_tokens(service: ServiceConfig, env: Mapping[str, str],
                     problems: list[str]) -> ServiceConfig:
    """Add the `role:token` pairs of env STREAMWATCH_API_TOKENS, hashed here: from this point on
    the plaintext exists nowhere in the Config. Problems name the entry (1-based), never the
    token: an error message must not leak what it complains about."""
    from streamwatch.config.schema import ROLES, TokenEntry, token_digest
    raw = env.get(TOKENS_ENV, "")
    added: list[TokenEntry] = []
    for i, entry in enumerate(raw.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue                      # `a,b,` or blanks: nothing to add
        where = f"env {TOKENS_ENV}: entry {i}"
        role, sep, token = entry.partition(":")
        role = role.strip()
        if not sep or not token:
            problems.append(f"{where}: expected role:token")
        elif role not in ROLES:
            # a role is a short word; anything token-sized may be a swapped token:role pair
            shown = f"{role!r}" if len(role) < MIN_TOKEN_CHARS else f"({len(role)} characters)"
            problems.append(f"{where}: unknown role {shown} (roles: {', '.join(ROLES)})")
        elif len(token) < MIN_TOKEN_CHARS:
            problems.append(f"{where}: the token has {len(token)} characters; at least "
                            f"{MIN_TOKEN_CHARS} are needed (e.g. python -c \"import secrets; "
                            "print(secrets.token_urlsafe(24))\")")
        elif not all("!" <= c <= "~" for c in token):
            problems.append(f"{where}: the token may hold only printable ASCII without spaces "
                            "(it travels in an HTTP header)")
        else:
            added.append(TokenEntry(role=role, sha256=token_digest(token),  # type: ignore[arg-type]
                                    name=f"{role}:env#{i}"))
    if not added:
        return service
    auth = service.auth.model_copy(update={"tokens": [*service.auth.tokens, *added]})
    return service.model_copy(update={"auth": auth})


def _with_sources_file(service: ServiceConfig, path: Path, problems: list[str]) -> ServiceConfig:
    """Append the [[sources]] of config/sources.toml to those of service.toml, and check each
    source's settings for its kind (ingest/sources.py knows what a kind needs)."""
    from streamwatch.config.schema import SourceSettings
    from streamwatch.ingest.sources import source_problems
    name = "config/sources.toml"
    located = [("config/service.toml", i, s) for i, s in enumerate(service.sources)]
    raw: Any = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"{name}: not valid TOML: {exc}")
    for key in sorted(set(raw) - {"sources"}):
        problems.append(f"{name}: {key}: unknown table (expected [[sources]])")
    entries = raw.get("sources", [])
    if not isinstance(entries, list):
        problems.append(f"{name}: sources: must be an array of tables ([[sources]])")
        entries = []
    for i, entry in enumerate(entries):
        try:
            located.append((name, i, SourceSettings.model_validate(entry)))
        except ValidationError as exc:
            problems.extend(format_validation_error(name, f"sources[{i}]", exc, entry))
    seen: dict[str, str] = {}
    for file, i, src in located:
        for key, value, why in source_problems(src):
            problems.append(f"{file}: sources[{i}].{key} = {value!r}: {why}")
        if src.name in seen:
            problems.append(f"{file}: sources[{i}].name = {src.name!r}: already used by "
                            f"{seen[src.name]}")
        seen.setdefault(src.name, f"{file}: sources[{i}]")
    return service.model_copy(update={"sources": [s for _, _, s in located]})


def _with_routing_file(service: ServiceConfig, path: Path, env: Mapping[str, str],
                       problems: list[str]) -> ServiceConfig:
    """config/routing.toml: `[[receivers]]` and the `[route]` tree (config/routing.py); each
    receiver's `secret_env` must name a variable that is set."""
    from streamwatch.config.routing import RoutingSettings
    name = "config/routing.toml"
    if not path.exists():
        return service
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{name}: not valid TOML: {exc}")
        return service
    try:
        routing = RoutingSettings.model_validate(raw)
    except ValidationError as exc:
        problems.extend(format_validation_error(name, "", exc, raw))
        return service
    for i, r in enumerate(routing.receivers):
        if r.secret_env and not env.get(r.secret_env):
            problems.append(f"{name}: receivers[{i}].secret_env = {r.secret_env!r}: "
                            "environment variable not set")
    return service.model_copy(update={"routing": routing})


def load_config(config_dir: Path | None = None, detectors_dir: Path | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """The validated configuration, or ConfigError listing every problem found."""
    d_cfg, d_det = default_dirs()
    config_dir = Path(config_dir) if config_dir else d_cfg
    if detectors_dir is None:
        sibling = config_dir.parent / "detectors"
        detectors_dir = sibling if config_dir != d_cfg and sibling.is_dir() else d_det
    env = os.environ if env is None else env
    problems: list[str] = []
    data: dict[str, Any] = {}
    service_file = config_dir / "service.toml"
    if not config_dir.is_dir():
        problems.append(f"{config_dir}: not a directory")
    elif service_file.exists():
        try:
            data = tomllib.loads(service_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"config/service.toml: not valid TOML: {exc}")
    _env_overlay(data, env, problems)
    if WEBHOOK_HOSTS_ENV in env:
        hooks = data.setdefault("webhooks", {})
        if isinstance(hooks, dict):
            hooks["allowed_hosts"] = [h for h in env[WEBHOOK_HOSTS_ENV].split(",") if h.strip()]
    service = ServiceConfig()
    try:
        service = ServiceConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(format_validation_error("config/service.toml", "", exc, data))
    service = _with_env_tokens(service, env, problems)
    if config_dir.is_dir():
        service = _with_sources_file(service, config_dir / "sources.toml", problems)
        service = _with_routing_file(service, config_dir / "routing.toml", env, problems)
    rules: list[Rule] = []
    if not detectors_dir.is_dir():
        problems.append(f"{detectors_dir}: not a directory")
    else:
        from streamwatch.detect.registry import check_rule
        files = sorted(detectors_dir.glob("*.toml"))
        if not files:
            problems.append(f"{detectors_dir}: no *.toml rule files")
        for f in files:
            found, errs = load_rules_file(f)
            problems.extend(errs)
            for r in found:
                errs = check_rule(r)
                problems.extend(errs)
                if not errs:
                    rules.append(r)
        names: dict[str, str] = {}
        for r in rules:
            if r.name in names:
                problems.append(f"{r.source}.name = {r.name!r}: already used by {names[r.name]}")
            names[r.name] = r.source
    if problems:
        raise ConfigError(problems)
    return Config(service, rules, config_dir, detectors_dir)
