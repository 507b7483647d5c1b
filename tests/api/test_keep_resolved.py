"""`[storage] keep_resolved`: how many resolved incidents the service holds in memory. The soak
(benchmarks/soak.py) sets it low through the environment so that this bounded buffer filling is
not taken for a leak; here: the setting reaches the index, bounds it, and bad values are named."""
from __future__ import annotations

import pytest

from streamwatch.config.load import load_config
from streamwatch.exceptions import ConfigError
from streamwatch.service import Service
from tests.api.conftest import REPO, make_config


def _resolved(k: int) -> dict[str, object]:
    return {"id": f"inc-{k:08d}", "status": "resolved", "stream": f"room-{k}",
            "started_at": 1.0 * k, "resolved_at": 2.0 * k, "timeline": []}


def test_the_service_holds_at_most_keep_resolved_resolved_incidents() -> None:
    svc = Service(make_config(storage={"keep_resolved": 10}))
    for k in range(1, 26):
        svc.incidents.put(_resolved(k))
    held = [k for k in range(1, 26) if svc.incidents.get(f"inc-{k:08d}") is not None]
    assert held == list(range(16, 26))                        # the newest 10


def test_it_is_read_from_the_environment_and_bad_values_are_named() -> None:
    cfg = load_config(REPO / "config", REPO / "detectors",
                      env={"STREAMWATCH_STORAGE__KEEP_RESOLVED": "100"})
    assert cfg.service.storage.keep_resolved == 100
    with pytest.raises(ConfigError, match="keep_resolved"):
        load_config(REPO / "config", REPO / "detectors",
                    env={"STREAMWATCH_STORAGE__KEEP_RESOLVED": "3"})
