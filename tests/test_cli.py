"""The command line, end to end in subprocesses: outputs, determinism, exit codes (CONTRACTS §4)."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[1]


def sw(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "streamwatch", *map(str, args)],
                          capture_output=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("session")
    res = sw("simulate", "--seed", "11", "--rooms", "8", "--minutes", "60", "--out", out)
    assert res.returncode == 0, res.stderr.decode()
    return out


def test_simulate_writes_samples_and_labels(session: Path) -> None:
    labels = orjson.loads((session / "labels.json").read_bytes())
    assert labels["incidents"] and (session / "samples.ndjson").stat().st_size > 0


def test_replay_is_byte_identical_twice_and_events_follow_the_contract(
        session: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    for out in (a, b):
        res = sw("replay", session / "samples.ndjson", "--output", out)
        assert res.returncode == 0, res.stderr.decode()
        assert b"samples/s" in res.stderr      # the one-line summary
    assert a.read_bytes() == b.read_bytes()
    events = [orjson.loads(line) for line in a.read_bytes().splitlines()]
    assert any(e["level"] <= 2 for e in events), "a 60-minute session with incidents pages"
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "ids sort in emission order"
    required = {"id", "ts", "stream", "metric", "level", "team", "status", "incident_id",
                "incident_type", "kind", "score", "observed", "expected", "summary"}
    for e in events:
        assert required <= set(e)
        assert e["level"] in (1, 2, 3, 4) and e["status"] in ("firing", "resolved")
        assert e["team"] in ("live_ops", "tech", "customer_service", "logistics", "command")


def test_replay_writes_stdout_by_default(session: Path, tmp_path: Path) -> None:
    res = sw("replay", session / "samples.ndjson")
    assert res.returncode == 0 and res.stdout.count(b"\n") >= 1
    assert res.stdout.splitlines()[0].startswith(b'{"id":')


def test_replay_skips_bad_lines_and_keeps_the_good(tmp_path: Path) -> None:
    src = tmp_path / "mixed.ndjson"
    src.write_bytes(b'{"stream":"r","metric":"viewers","ts":1767225600,"value":10}\n'
                    b'not json\n'
                    b'{"stream":"r","metric":"viewers","ts":1767225601,"value":NaN}\n'
                    b'{"stream":"r","metric":"viewers","ts":1767225602,"value":11}\n')
    res = sw("replay", src, "--output", tmp_path / "out.ndjson")
    err = res.stderr.decode()
    assert res.returncode == 0, err
    assert "2 accepted, 2 rejected" in err
    assert f"{src}:2" in err and f"{src}:3" in err and "non_finite" in err


def test_replay_missing_input_exits_2(tmp_path: Path) -> None:
    res = sw("replay", tmp_path / "nope.ndjson")
    assert res.returncode == 2 and b"no such file" in res.stderr


def test_scores_only_for_csv(session: Path, tmp_path: Path) -> None:
    res = sw("replay", session / "samples.ndjson", "--scores", tmp_path / "s.csv")
    assert res.returncode == 2 and b"CSV" in res.stderr


def test_nab_csv_scores_every_row_in_order(tmp_path: Path) -> None:
    src = tmp_path / "series.csv"
    rows = [("timestamp", "value")]
    for i in range(600):
        v = 50.0 + (i % 7) + (400.0 if i == 450 else 0.0)
        rows.append((f"2014-02-14 {i // 60 % 24:02d}:{i % 60:02d}:00", f"{v}"))
    src.write_text("\r\n".join(",".join(r) for r in rows) + "\r\n")
    res = sw("replay", src, "--scores", tmp_path / "scores.csv", "--output", tmp_path / "a.ndjson")
    assert res.returncode == 0, res.stderr.decode()
    with open(tmp_path / "scores.csv", newline="") as f:
        got = list(csv.reader(f))
    assert got[0] == ["timestamp", "value", "anomaly_score"]
    assert [g[0] for g in got[1:]] == [r[0] for r in rows[1:]], "timestamps as given, in order"
    scores = [float(g[2]) for g in got[1:]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[450] == max(scores) and scores[450] > 0.5, "the spike stands out"
    assert len(set(scores)) > 10, "continuous, not 0/1"


def test_bad_csv_exits_2_naming_the_line(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("timestamp,value\n2014-02-14 00:00:00,1\n2014-02-14 00:05:00,abc\n")
    res = sw("replay", src, "--scores", tmp_path / "s.csv")
    assert res.returncode == 2 and b":3" in res.stderr


def test_check_accepts_the_shipped_config() -> None:
    res = sw("check", "--config", REPO / "config", "--detectors", REPO / "detectors")
    assert res.returncode == 0 and b"ok:" in res.stdout


def test_check_names_what_is_wrong_where(tmp_path: Path) -> None:
    det = tmp_path / "detectors"
    det.mkdir()
    (det / "audience.toml").write_text(
        '[[rule]]\nname = "x"\nmetric = "viewers"\nmethod = "baseline"\nlevels = { 1 = -2 }\n')
    res = sw("check", "--config", REPO / "config", "--detectors", det)
    assert res.returncode == 2
    assert "detectors/audience.toml: rule[0].levels" in res.stderr.decode()


def test_bad_usage_exits_2() -> None:
    assert sw("replay").returncode == 2
    assert sw("no-such-command").returncode == 2
