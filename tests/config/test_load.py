"""Config and rule files: the shipped ones are valid; bad ones are refused with located messages."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streamwatch.config.load import default_dirs, load_config
from streamwatch.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_and_rules_load() -> None:
    cfg = load_config(REPO / "config", REPO / "detectors")
    names = {r.name for r in cfg.rules}
    assert {"viewers_drop", "orders_stopped", "bitrate_collapse", "complaints_surge"} <= names


def test_packaged_defaults_are_the_repository_files() -> None:
    cfg_dir, det_dir = default_dirs()
    assert sorted(p.name for p in det_dir.glob("*.toml")) == sorted(
        p.name for p in (REPO / "detectors").glob("*.toml"))
    assert (cfg_dir / "service.toml").read_text() == (REPO / "config/service.toml").read_text()


def _with_rule(tmp_path: Path, text: str) -> tuple[Path, Path]:
    cfg = tmp_path / "config"
    det = tmp_path / "detectors"
    shutil.copytree(REPO / "config", cfg)
    det.mkdir()
    (det / "bad.toml").write_text(text)
    return cfg, det


@pytest.mark.parametrize("text,expected", [
    # a threshold level outside 1..4
    ('[[rule]]\nname="a"\nmetric="viewers"\nmethod="baseline"\nlevels={7=0.5}\n',
     "detectors/bad.toml: rule[0].levels: level 7 is not one of 1, 2, 3, 4"),
    # an unknown method names the ones that exist
    ('[[rule]]\nname="a"\nmetric="viewers"\nmethod="magic"\nlevels={2=0.5}\n',
     "detectors/bad.toml: rule[0].method = 'magic': unknown method"),
    # a missing key
    ('[[rule]]\nname="a"\nmethod="baseline"\nlevels={2=0.5}\n',
     "detectors/bad.toml: rule[0].metric: Field required"),
    # a method-specific key of the wrong kind
    ('[[rule]]\nname="a"\nmetric="viewers"\nmethod="baseline"\nlevels={2=0.5}\nwindow="ten"\n',
     "detectors/bad.toml: rule[0].window = 'ten': 'ten' is not a duration"),
    # a negative relative threshold
    ('[[rule]]\nname="a"\nmetric="viewers"\nmethod="baseline"\nlevels={2=-0.5}\n',
     "detectors/bad.toml: rule[0].levels: threshold of level 2 must be > 0"),
    # an unknown team
    ('[[rule]]\nname="a"\nmetric="viewers"\nmethod="baseline"\nlevels={2=0.5}\nteam="sales"\n',
     "detectors/bad.toml: rule[0].team = 'sales': Input should be"),
    # broken TOML
    ('[[rule]\nname="a"\n', "detectors/bad.toml: not valid TOML"),
    # a table that means nothing here
    ('[rules]\nx=1\n', "detectors/bad.toml: rules: unknown table"),
])
def test_bad_rule_files_are_located(tmp_path: Path, text: str, expected: str) -> None:
    cfg, det = _with_rule(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, det)
    assert any(p.startswith(expected) for p in exc.value.problems), exc.value.problems


def test_service_setting_overridden_from_environment() -> None:
    cfg = load_config(REPO / "config", REPO / "detectors",
                      env={"STREAMWATCH_INGEST__ALLOWED_LATENESS": "45s"})
    assert cfg.service.ingest.allowed_lateness == 45.0


def test_bad_environment_override_is_located() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(REPO / "config", REPO / "detectors",
                    env={"STREAMWATCH_GRADING__LARGE_SHARE": "3"})
    assert any("grading.large_share = 3" in p for p in exc.value.problems), exc.value.problems


def test_unknown_service_key_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "service.toml").write_text("[ingest]\nallowed_latenes = '30s'\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, REPO / "detectors")
    assert any("ingest.allowed_latenes" in p and "Extra inputs" in p for p in exc.value.problems)
