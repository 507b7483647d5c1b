"""`streamwatch review` in a subprocess, on the store a real service run left behind: the JSON
is the HTTP report's, the table is readable, bad arguments exit 2."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streamwatch.service import Service
from tests.api.conftest import LiveServer, live_server, make_config, wait_until  # noqa: F401
from tests.pipeline.scenario import T0
from tests.store.helpers import NDJSON, outage_chunks

NOW = T0 + 23 * 60
WINDOW = ("--from", str(T0 - 3600), "--to", "2026-01-01T00:23:00Z")


def sw(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamwatch", *map(str, args)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def stored(live_server: Callable[..., LiveServer],  # noqa: F811
           tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A data dir written by a real run (samples pushed, one ack, one false alarm), and the
    report the service answered over HTTP before it stopped."""
    data = tmp_path / "data"
    srv = live_server(service=Service(make_config(), data_dir=data, clock=lambda: NOW))
    for body in outage_chunks(earlier=True):
        assert httpx.post(f"{srv.url}/v1/samples", content=body, headers=NDJSON).status_code == 200

    def both() -> dict[str, dict[str, Any]] | None:
        got = {i["stream"]: i for i in srv.service.incidents.query()}
        ok = ("room-a" in got and got["room-a"]["status"] == "open"
              and "room-b" in got and got["room-b"]["status"] == "resolved")
        return got if ok else None
    incs = wait_until(both, what="room-a open and room-b resolved")
    assert httpx.post(f"{srv.url}/v1/incidents/{incs['room-a']['id']}/ack").status_code == 200
    assert httpx.post(f"{srv.url}/v1/incidents/{incs['room-b']['id']}/note",
                      json={"note": "#误报"}).status_code == 200
    rep = httpx.get(f"{srv.url}/v1/reports/review",
                    params={"from": WINDOW[1], "to": WINDOW[3]}).json()
    srv.stop()
    return data, rep


def test_json_matches_the_http_report(stored: tuple[Path, dict[str, Any]]) -> None:
    data, http_report = stored
    p = sw("review", "--data-dir", data, *WINDOW, "--json")
    assert p.returncode == 0, p.stderr
    got = orjson.loads(p.stdout)
    assert got == http_report
    assert got["total"]["incidents"] == 2 and got["total"]["false_alarms"] == 1
    assert got["total"]["time_to_ack_s"]["n"] == 1


def test_table_is_readable(stored: tuple[Path, dict[str, Any]]) -> None:
    data, rep = stored
    p = sw("review", "--data-dir", data, *WINDOW)
    assert p.returncode == 0, p.stderr
    assert "Response-speed review" in p.stdout and "escalations: steps notified" in p.stdout
    for row in rep["rows"]:
        assert f"L{row['level']}" in p.stdout and row["team"] in p.stdout
    assert "ALL" in p.stdout


@pytest.mark.parametrize("args, says", [
    (("--from", "soon"), "--from"), (("--to", "2026-01-01"), "--to"),
    (("--from", "100", "--to", "50"), "--from")])
def test_bad_window_exits_2(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    p = sw("review", "--data-dir", tmp_path, *args)
    assert p.returncode == 2 and says in p.stderr


def test_missing_store_exits_2(tmp_path: Path) -> None:
    p = sw("review", "--data-dir", tmp_path / "nowhere", "--json")
    assert p.returncode == 2 and "no store" in p.stderr
    assert not (tmp_path / "nowhere").exists()                  # nothing created
