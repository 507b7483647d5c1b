"""Method name -> Detector class, and building a detector from a rule.

Adding a method: write a class obeying detect/base.py's Detector, add it to METHODS, and the
contract tests in tests/detect/ run over it automatically.

The method's `Params` model says which keys a rule of that method may hold besides the `Rule`
model's own. The Params models ignore other keys (a `[defaults]` table is shared by rules of
several methods), so `check_rule` and the rules loader refuse unknown ones here, by name and
with the closest valid key: a typo like `windw = "5m"` would otherwise be silently dropped.
"""
from __future__ import annotations

import difflib

from pydantic import ValidationError

from streamwatch.config.rules import Rule, format_validation_error
from streamwatch.detect.base import Detector
from streamwatch.detect.baseline import RobustBaseline
from streamwatch.detect.bounds import StaticBounds
from streamwatch.detect.count import PoissonCount
from streamwatch.detect.table import is_counter

__all__ = ["METHODS", "build_detector", "check_rule", "method_keys", "unknown_key"]


def _methods() -> dict[str, type]:
    methods: dict[str, type] = {c.method: c for c in (RobustBaseline, StaticBounds, PoissonCount)}
    try:
        from streamwatch.detect.generic import GenericDetector
        methods[GenericDetector.method] = GenericDetector
    except ImportError:  # pragma: no cover - generic method not built yet
        pass
    return methods


METHODS: dict[str, type] = _methods()


# Params fields `_params_input` fills in itself; a rule may still set them, but they are not
# offered as suggestions or listed (the README reference leaves them out too)
_DERIVED = frozenset({"counter", "per_gauge"})
_RULE_INTERNAL = frozenset({"source"})       # set by the loader, never written by hand


def method_keys(method: str) -> frozenset[str]:
    """Keys a rule of `method` may hold besides the Rule's own: its Params fields (and their
    aliases). Empty for a method that does not exist."""
    cls = METHODS.get(method)
    if cls is None:
        return frozenset()
    fields = cls.Params.model_fields
    return frozenset(fields) | {f.alias for f in fields.values() if f.alias}


def unknown_key(key: str, method: str | None) -> str | None:
    """None when `key` may be in a rule of `method` (None: of some method, as a `[defaults]`
    key may be); else a hint for the message: the closest valid key, the method the key belongs
    to, or failing both the valid keys."""
    rule_keys = frozenset(Rule.model_fields)
    valid = (method_keys(method) if method is not None
             else frozenset().union(*map(method_keys, METHODS)))
    if key in rule_keys or key in valid:
        return None
    owners = [m for m in sorted(METHODS) if key in method_keys(m) - _DERIVED]
    if owners:                       # only a rule of another method gets here
        return f"{key!r} is a key of method {' and '.join(owners)}, not of {method}"
    offered = (rule_keys | valid) - _DERIVED - _RULE_INTERNAL
    close = difflib.get_close_matches(key, sorted(offered), n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    own = ", ".join(sorted(offered - rule_keys)) or "none"
    return (f"rule keys: {', '.join(sorted(rule_keys - _RULE_INTERNAL))}; "
            f"{f'method {method} keys' if method else 'method keys'}: {own}")


def _params_input(rule: Rule) -> dict[str, object]:
    data: dict[str, object] = {"levels": rule.levels, "direction": rule.direction, **rule.extra()}
    data.setdefault("counter", is_counter(rule.metric))
    per = rule.extra().get("per")
    if isinstance(per, str):
        data.setdefault("per_gauge", not is_counter(per))
    return data


def check_rule(rule: Rule) -> list[str]:
    """Problems with a rule's method and its method-specific keys, located like the loader's."""
    cls = METHODS.get(rule.method)
    file, _, where = rule.source.partition(": ")
    if cls is None:
        return [f"{file}: {where}.method = {rule.method!r}: unknown method "
                f"(one of {', '.join(sorted(METHODS))})"]
    problems = []
    for key, value in rule.extra().items():
        hint = unknown_key(key, rule.method)
        if hint is not None:
            shown = "" if isinstance(value, dict) else f" = {value!r}"
            problems.append(f"{file}: {where}.{key}{shown}: unknown key in rule {rule.name!r} "
                            f"(method {rule.method}); {hint}")
    try:
        cls.Params.model_validate(_params_input(rule))
    except ValidationError as exc:
        problems.extend(format_validation_error(file, where, exc, rule))
    return problems


def build_detector(rule: Rule) -> Detector:
    cls = METHODS[rule.method]
    return cls(cls.Params.model_validate(_params_input(rule)))  # type: ignore[no-any-return]
