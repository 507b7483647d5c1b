"""Detector rules: the models of detectors/*.toml and how a file of them is read.

A rules file has an optional `[defaults]` table inherited by each `[[rule]]` (alertmanager
route-style): a rule states only what differs. Method-specific keys (`fast`, `z_min`,
`denominator`, ...) stay on the rule and are validated by that method's `Params` model when the
detector is built (detect/registry.py), so one error message format covers both.

Unknown keys are errors, never silently dropped: a rule's own keys must be the Rule's or its
method's (registry.check_rule); `[defaults]` is shared by rules of several methods, so each of its
keys must be some method's (checked once, here), and a rule inherits only those that are its
method's - `fast` for the baseline rules of a file does not land on its count rule.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from streamwatch.config.durations import Duration
from streamwatch.types import Team

__all__ = ["Rule", "RuleSet", "load_rules_file", "format_validation_error"]

Direction = Literal["up", "down", "both"]


class Rule(BaseModel):
    """One watched condition: which metric, which method, thresholds per level, who handles it."""
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1, description=(
        "unique across all rules files; names the rule in messages"))
    metric: str = Field(min_length=1, description=(
        "the metric watched (CONTRACTS.md §1 name), or \"*\" = any metric no other rule names"))
    method: str = Field(min_length=1, description=(
        "how the metric is judged: one of the methods below (detect/registry.py)"))
    team: Team = Field(default=Team.LIVE_OPS, description="who handles what this rule finds")
    direction: Direction = Field(default="both", description=(
        "which way is anomalous; each method says which directions it takes"))
    min_duration: Duration = Field(default=0.0, description=(
        "how long an anomaly must persist before it counts (becomes a signal)"))
    clear_after: Duration = Field(default=30.0, description=(
        "how long of normal before an active anomaly clears"))
    levels: dict[int, float] = Field(min_length=1, description=(
        "threshold per level, `{ 1 = x, 2 = y }` (levels 1..4, 1 most severe); what a "
        "threshold is depends on the method"))
    source: str = ""                         # "file: rule[i]" for messages; filled by the loader

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: dict[int, float]) -> dict[int, float]:
        for lvl in v:
            if lvl not in (1, 2, 3, 4):
                raise ValueError(f"level {lvl} is not one of 1, 2, 3, 4")
        return dict(sorted(v.items()))

    def extra(self) -> dict[str, Any]:
        """The method-specific keys, for the method's Params model."""
        return dict(self.model_extra or {})


class RuleSet(BaseModel):
    rules: list[Rule]


def format_validation_error(file: str, prefix: str, err: ValidationError, data: Any) -> list[str]:
    """`file: prefix.key.path = value: why` lines, one per problem pydantic found."""
    out = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        where = f"{prefix}.{path}" if prefix and path else (prefix or path)
        value = e.get("input", None)
        shown = "" if isinstance(value, dict) or e["type"] == "missing" else f" = {value!r}"
        msg = e["msg"].removeprefix("Value error, ")
        out.append(f"{file}: {where}{shown}: {msg}")
    return out


def load_rules_file(path: Path) -> tuple[list[Rule], list[str]]:
    """Rules of one file and the problems found in it (each located as file: key: why)."""
    name = path.name if path.parent.name != "detectors" else f"detectors/{path.name}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        return [], [f"{name}: not valid TOML: {exc}"]
    except OSError as exc:
        return [], [f"{name}: cannot be read: {exc.strerror}"]
    problems: list[str] = []
    unknown = set(data) - {"defaults", "rule"}
    for key in sorted(unknown):
        problems.append(f"{name}: {key}: unknown table (expected [defaults] and [[rule]])")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        return [], problems + [f"{name}: defaults: must be a table"]
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        return [], problems + [f"{name}: rule: must be an array of tables ([[rule]])"]
    # lazily: detect/ builds on config/, and only the registry knows the methods' keys
    from streamwatch.detect.registry import METHODS, method_keys, unknown_key
    for key, value in defaults.items():
        hint = unknown_key(key, None)
        if hint is not None:
            shown = "" if isinstance(value, dict) else f" = {value!r}"
            problems.append(f"{name}: defaults.{key}{shown}: unknown key; {hint}")
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            problems.append(f"{name}: rule[{i}] = {raw!r}: must be a table ([[rule]])")
            continue
        method = raw.get("method", defaults.get("method"))
        if isinstance(method, str) and method in METHODS:   # else all: the method is reported
            keep = Rule.model_fields.keys() | method_keys(method)
            inherited = {k: v for k, v in defaults.items() if k in keep}
        else:
            inherited = defaults
        merged = {**inherited, **raw, "source": f"{name}: rule[{i}]"}
        try:
            rules.append(Rule.model_validate(merged))
        except ValidationError as exc:
            problems.extend(format_validation_error(name, f"rule[{i}]", exc, merged))
    return rules, problems
