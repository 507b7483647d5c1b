"""config/sources.toml: the shipped examples are valid; bad sources are refused, located."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streamwatch.config.load import load_config
from streamwatch.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, sources: str, service_extra: str = "") -> Path:
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    (cfg / "sources.toml").write_text(sources)
    if service_extra:
        with open(cfg / "service.toml", "a") as fh:
            fh.write(service_extra)
    return cfg


def test_shipped_sources_file_starts_nothing() -> None:
    assert load_config(REPO / "config", REPO / "detectors").service.sources == []


def test_shipped_examples_load_when_uncommented(tmp_path: Path) -> None:
    """Every example block, with its "# " removed, is a valid source of its kind."""
    text = (REPO / "config/sources.toml").read_text()
    examples = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    cfg = load_config(_config(tmp_path, examples), REPO / "detectors")
    kinds = [s.kind for s in cfg.service.sources]
    assert set(kinds) == {"http_json", "prometheus", "simulator"}
    by_name = {s.name: s for s in cfg.service.sources}
    assert by_name["douyin-rooms"].mapping["data.rooms[].online_count"] == "viewers"
    assert by_name["douyin-rooms"].max_backoff == 120.0
    for s in cfg.service.sources:
        assert s.kind == "simulator" or s.url.startswith("http://127.0.0.1:")


def test_sources_from_both_files_in_order(tmp_path: Path) -> None:
    cfg = _config(tmp_path, '[[sources]]\nname = "b"\nkind = "simulator"\n',
                  '\n[[sources]]\nname = "a"\nkind = "prometheus"\n'
                  'url = "http://127.0.0.1:9100/metrics"\nmapping = { up = "error_ratio" }\n')
    assert [s.name for s in load_config(cfg, REPO / "detectors").service.sources] == ["a", "b"]


_HTTP = '[[sources]]\nname = "a"\nkind = "http_json"\nurl = "http://127.0.0.1:1/x"\n'


@pytest.mark.parametrize("text,expected", [
    ('[[sources]]\nname = "a"\nkind = "http_json"\nurl = "ftp://x/y"\n',
     "config/sources.toml: sources[0].url = 'ftp://x/y': must be an http:// or https:// URL"),
    ('[[sources]]\nname = "a"\nkind = "http_json"\n',
     "config/sources.toml: sources[0].url = '': must be an http:// or https:// URL"),
    ('[[sources]]\nname = "a"\nkind = "kafka"\n',
     "config/sources.toml: sources[0].kind = 'kafka': Input should be"),
    ('[[sources]]\nkind = "simulator"\n', "config/sources.toml: sources[0].name: Field required"),
    (_HTTP + 'interval = "soon"\n',
     "config/sources.toml: sources[0].interval = 'soon': 'soon' is not a duration"),
    (_HTTP + "colour = 1\n", "config/sources.toml: sources[0].colour = 1: Extra inputs"),
    (_HTTP + "jitter = 2\n", "config/sources.toml: sources[0].jitter = 2.0: must be a fraction"),
    (_HTTP + "timeout = 0\n", "config/sources.toml: sources[0].timeout = 0.0: must be > 0"),
    (_HTTP + 'mapping = { "a[].x" = "viewers", "b[].y" = "stream" }\n',
     "config/sources.toml: sources[0].mapping = {'a[].x': 'viewers', 'b[].y': 'stream'}: "
     "all [] paths must name the same list"),
    (_HTTP + 'mapping = { "data.id" = "stream" }\n',
     "config/sources.toml: sources[0].mapping = {'data.id': 'stream'}: no field is mapped"),
    ('[[sources]]\nname = "p"\nkind = "prometheus"\nurl = "http://127.0.0.1:1/m"\n'
     'mapping = { "rate(cpu_total" = "cpu_utilization" }\n',
     "config/sources.toml: sources[0].mapping = 'rate(cpu_total': not a series selector"),
    ('[[sources]]\nname = "p"\nkind = "prometheus"\nurl = "http://127.0.0.1:1/m"\n',
     "config/sources.toml: sources[0].mapping = {}: name the series to keep"),
    ('[[sources]]\nname = "s"\nkind = "simulator"\nspeed = 0\n',
     "config/sources.toml: sources[0].speed = 0.0: must be > 0"),
    (_HTTP + _HTTP,
     "config/sources.toml: sources[1].name = 'a': already used by config/sources.toml: "
     "sources[0]"),
    ('[[sources]\nname = "a"\n', "config/sources.toml: not valid TOML"),
    ('[source]\nname = "a"\n', "config/sources.toml: source: unknown table"),
    ('sources = 3\n', "config/sources.toml: sources: must be an array of tables"),
])
def test_bad_sources_are_located(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(_config(tmp_path, text), REPO / "detectors")
    assert any(p.startswith(expected) for p in exc.value.problems), exc.value.problems


def test_bad_source_in_service_toml_names_that_file(tmp_path: Path) -> None:
    cfg = _config(tmp_path, _HTTP, '\n[[sources]]\nname = "a"\nkind = "simulator"\n'
                  'rooms = -1\n')
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, REPO / "detectors")
    assert exc.value.problems == [
        "config/service.toml: sources[0].rooms = -1: must be >= 0",
        "config/sources.toml: sources[0].name = 'a': already used by config/service.toml: "
        "sources[0]"]
