"""Method name -> Detector class, and building a detector from a rule.

Adding a method: write a class obeying detect/base.py's Detector, add it to METHODS, and the
contract tests in tests/detect/ run over it automatically.
"""
from __future__ import annotations

from pydantic import ValidationError

from streamwatch.config.rules import Rule, format_validation_error
from streamwatch.detect.base import Detector
from streamwatch.detect.baseline import RobustBaseline
from streamwatch.detect.bounds import StaticBounds
from streamwatch.detect.count import PoissonCount
from streamwatch.detect.table import is_counter

__all__ = ["METHODS", "build_detector", "check_rule"]


def _methods() -> dict[str, type]:
    methods: dict[str, type] = {c.method: c for c in (RobustBaseline, StaticBounds, PoissonCount)}
    try:
        from streamwatch.detect.generic import GenericDetector
        methods[GenericDetector.method] = GenericDetector
    except ImportError:  # pragma: no cover - generic method not built yet
        pass
    return methods


METHODS: dict[str, type] = _methods()


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
    try:
        cls.Params.model_validate(_params_input(rule))
    except ValidationError as exc:
        return format_validation_error(file, where, exc, rule)
    return []


def build_detector(rule: Rule) -> Detector:
    cls = METHODS[rule.method]
    return cls(cls.Params.model_validate(_params_input(rule)))  # type: ignore[no-any-return]
