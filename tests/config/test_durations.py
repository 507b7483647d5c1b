"""The `Duration` field type (config/durations.py), on every field that uses it.

Each config model used to carry its own `parse_duration` validator; now one annotated type does.
These tests prove each duration field still reads "1h30m" as seconds and refuses a bad value
naming the field and the value, and that the located message `streamwatch check` prints for a
bad duration is as it was.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from streamwatch.config.load import load_config
from streamwatch.config.routing import Route
from streamwatch.config.rules import Rule
from streamwatch.config.schema import (EscalationStep, IngestSettings, SourceSettings,
                                       StorageSettings, WebhookSettings)
from streamwatch.detect.baseline import BaselineParams
from streamwatch.detect.count import CountParams
from streamwatch.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[2]
_SOURCE = {"name": "s", "kind": "simulator"}
_RULE = {"name": "r", "metric": "viewers", "method": "baseline", "levels": {2: 0.5}}
_PARAMS = {"levels": {2: 0.5}}

# (model, field, the other fields it needs)
FIELDS: list[tuple[type[BaseModel], str, dict[str, Any]]] = [
    (IngestSettings, "allowed_lateness", {}), (IngestSettings, "silence_after", {}),
    (IngestSettings, "future_skew", {}), (StorageSettings, "checkpoint_interval", {}),
    (SourceSettings, "interval", _SOURCE), (SourceSettings, "timeout", _SOURCE),
    (SourceSettings, "max_backoff", _SOURCE), (WebhookSettings, "timeout", {}),
    (WebhookSettings, "backoff_base", {}), (WebhookSettings, "backoff_max", {}),
    (EscalationStep, "after", {"team": "tech", "notify": "command"}),
    (Route, "repeat_interval", {}), (Rule, "min_duration", _RULE), (Rule, "clear_after", _RULE),
    *[(BaselineParams, f, _PARAMS) for f in ("window", "fast", "warmup", "ramp", "adapt")],
    *[(CountParams, f, _PARAMS) for f in ("window", "warmup", "ramp", "adapt")],
]


@pytest.mark.parametrize("model,name,base", FIELDS,
                         ids=[f"{m.__name__}.{n}" for m, n, _ in FIELDS])
def test_every_duration_field_parses_and_refuses_by_name(model: type[BaseModel], name: str,
                                                         base: dict[str, Any]) -> None:
    assert getattr(model.model_validate({**base, name: "1h30m"}), name) == 5400.0
    assert getattr(model.model_validate({**base, name: 45}), name) == 45.0
    with pytest.raises(ValidationError) as exc:
        model.model_validate({**base, name: "10q"})
    (err,) = exc.value.errors()
    assert err["loc"] == (name,) and err["input"] == "10q"
    assert "'10q' is not a duration like '20s', '10m' or '1h30m'" in err["msg"]


def test_optional_duration_keeps_unset_and_constraints_apply_to_seconds() -> None:
    assert Route.model_validate({}).repeat_interval is None
    assert Route.model_validate({"repeat_interval": None}).repeat_interval is None
    with pytest.raises(ValidationError, match="greater than 0"):
        Route.model_validate({"repeat_interval": "0s"})      # gt=0 judged on the seconds
    with pytest.raises(ValidationError, match="a duration cannot be negative"):
        IngestSettings.model_validate({"silence_after": -5})
    with pytest.raises(ValidationError, match="a duration is a number of seconds"):
        IngestSettings.model_validate({"silence_after": True})   # not 1 second


def test_a_bad_duration_in_a_file_is_located(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "service.toml").write_text('[ingest]\nallowed_lateness = "half a minute"\n'
                                      '[[escalation]]\nteam = "tech"\nafter = "5 min"\n'
                                      'notify = "command"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, REPO / "detectors", env={})
    assert exc.value.problems == [
        "config/service.toml: ingest.allowed_lateness = 'half a minute': 'half a minute' is "
        "not a duration like '20s', '10m' or '1h30m'",
        "config/service.toml: escalation.0.after = '5 min': '5 min' is not a duration like "
        "'20s', '10m' or '1h30m'"], exc.value.problems
