"""The README's configuration reference (config/reference.py, scripts/config_reference.py).

The README section must equal what the models render, so a setting added without regenerating
fails here, naming the command that fixes it. The rest proves the rendering is worth trusting:
discovery follows the models wherever they nest (not a list of sections), every key of the
shipped config and detector files is in it, and types, defaults, constraints and durations are
shown as a user writes them.
"""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from streamwatch.config.durations import Duration, OptionalDuration, parse_duration
from streamwatch.config.reference import (COMMAND, END, START, Table, format_duration, render,
                                          rule_tables, service_tables, splice, undocumented)

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SCRIPT = REPO / "scripts" / "config_reference.py"


def _section(text: str) -> str:
    return text.split(START, 1)[1].split(END, 1)[0].lstrip("\n")


def _table(tables: list[Table], header: str) -> Table:
    found = [t for t in tables if t.header == header]
    assert found, f"no table {header}: {[t.header for t in tables]}"
    return found[0]


def _keys(table: Table) -> dict[str, object]:
    return {k.name: k for k in table.keys}


def test_readme_section_is_what_the_models_render() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1, "README lost its markers"
    assert _section(text) == render(), (
        f"README.md's configuration reference is out of date: run `{COMMAND}`")


def test_every_setting_and_table_has_a_description() -> None:
    missing = undocumented()
    assert not missing, ("settings without a description (add `description=` to the Field, "
                         f"or a docstring to the model): {missing}")


class _Leaf(BaseModel):
    """A leaf."""
    wait: Duration = Field(default=90.0, gt=0, description="how long")
    mode: Literal["a", "b"] = Field(default="a", description="which")
    every: OptionalDuration = Field(default=None, description="how often, if at all")
    count: float = Field(default=300.0, description="a plain number, not a duration")


class _Node(BaseModel):
    """A routing-tree-like node that contains itself."""
    receiver: str = Field(description="who")
    routes: list[_Node] = Field(default_factory=list, description="child routes")
    leaf: _Leaf = _Leaf()


class _Root(BaseModel):
    top: int = Field(default=1, ge=0, le=9, description="a top-level key")
    section: _Leaf = _Leaf()
    route: _Node | None = None
    named: dict[str, _Leaf] = Field(default_factory=dict)
    many: list[_Leaf] = Field(default_factory=list)


def test_discovery_follows_the_models_wherever_they_nest() -> None:
    """A model added anywhere under the root shows up, as a table, an array of tables or a map
    of tables; a self-containing model is described once and named, not followed forever."""
    tables = service_tables(_Root)
    assert [t.header for t in tables] == [
        "top level", "[section]", "[route]", "[route.leaf]", "[named.<name>]", "[[many]]"]
    assert _keys(_table(tables, "top level"))["top"].constraints == "≥ 0, ≤ 9"
    routes = _keys(_table(tables, "[route]"))["routes"]
    assert routes.type == "list of tables like `[route]` (nested)"
    assert routes.description == "child routes"
    wait = _keys(_table(tables, "[[many]]"))["wait"]
    assert (wait.type, wait.default, wait.constraints) == ("duration", '`"1m30s"`', "> 0s")
    every = _keys(_table(tables, "[[many]]"))["every"]
    assert (every.type, every.default) == ("duration", "unset")
    assert _keys(_table(tables, "[[many]]"))["count"].default == "`300.0`"
    assert _keys(_table(tables, "[section]"))["mode"].constraints == "one of `a`, `b`"


def test_every_key_of_the_shipped_service_file_is_in_the_reference() -> None:
    """config/service.toml (hand-written, commented) against the rendering: a section or key
    the walk missed would show here."""
    shipped = tomllib.loads((REPO / "config" / "service.toml").read_text(encoding="utf-8"))
    tables = service_tables()
    for section, values in shipped.items():
        keys = _keys(_table(tables, f"[{section}]"))
        assert set(values) <= set(keys), (section, set(values) - set(keys))


def test_every_key_of_the_shipped_detector_files_is_in_the_reference() -> None:
    """A rule's own keys are rule keys or its method's; `[defaults]` is shared by rules of
    several methods, so its keys need only be some method's."""
    tables = rule_tables()
    rule_keys = set(_keys(_table(tables, "[[rule]] and [defaults]")))
    any_method = {k for t in tables if t.header.startswith("method") for k in _keys(t)}
    seen = 0
    for path in sorted((REPO / "detectors").glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        defaults = data.get("defaults", {})
        assert not set(defaults) - rule_keys - any_method, (path.name, defaults)
        for raw in data.get("rule", []):
            method = raw.get("method", defaults.get("method"))
            method_keys = set(_keys(_table(tables, f'method = "{method}"')))
            unknown = set(raw) - rule_keys - method_keys
            assert not unknown, (path.name, raw["name"], unknown)
            seen += 1
    assert seen >= 10


def test_values_are_shown_as_a_user_writes_them() -> None:
    tables = service_tables()
    ingest = _keys(_table(tables, "[ingest]"))
    assert (ingest["allowed_lateness"].type, ingest["allowed_lateness"].default) == (
        "duration", '`"30s"`')
    assert ingest["future_skew"].default == '`"5m"`'
    server = _keys(_table(tables, "[server]"))
    assert server["port"].constraints == "≥ 0, ≤ 65535"
    assert server["metrics_public"].default == "`true`"
    assert server["host"].default == '`"127.0.0.1"`'
    step = _keys(_table(tables, "[[escalation]]"))
    assert step["after"].default == "required" and step["after"].constraints == "> 0s"
    assert step["team"].constraints.startswith("one of `live_ops`, `tech`")
    assert _keys(_table(tables, "[[auth.tokens]]"))["role"].constraints == (
        "one of `ingest`, `viewer`, `operator`, `admin`")
    rule = _keys(_table(rule_tables(), "[[rule]] and [defaults]"))
    assert rule["team"].default == '`"live_ops"`' and "source" not in rule
    count = _table(rule_tables(), 'method = "count"')
    assert "`direction`: `up`, `down` (state it" in count.doc
    assert {"counter", "per_gauge", "levels", "direction"}.isdisjoint(_keys(count))


@pytest.mark.parametrize("seconds", [0.0, 0.25, 1.5, 25.0, 90.0, 300.0, 5400.0, 86400.0,
                                     90061.0])
def test_durations_read_back_to_the_same_number(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_splice_replaces_only_the_section_and_refuses_missing_markers() -> None:
    text = f"head\n{START}\nold\n{END}\ntail\n"
    assert splice(text, "new\n") == f"head\n{START}\nnew\n{END}\ntail\n"
    with pytest.raises(ValueError, match="DOC.md: expected one"):
        splice("no markers\n", "x\n", "DOC.md")
    with pytest.raises(ValueError, match="expected one"):
        splice(f"{END}\n{START}\n", "x\n")


def test_the_script_checks_and_rewrites_a_stale_readme(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    current = README.read_text(encoding="utf-8")
    stale.write_text(current.replace("| `allowed_lateness` |", "| `allowed_lateness_old` |"),
                     encoding="utf-8")
    run = [sys.executable, str(SCRIPT), "--readme", str(stale)]
    check = subprocess.run(run + ["--check"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 1, check.stderr
    assert COMMAND in check.stderr and "allowed_lateness_old" in check.stderr
    write = subprocess.run(run + ["--write"], capture_output=True, text=True, timeout=60)
    assert write.returncode == 0, write.stderr
    assert stale.read_text(encoding="utf-8") == splice(current, render())
    again = subprocess.run(run + ["--check"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    stale.write_text("no markers here\n", encoding="utf-8")
    missing = subprocess.run(run + ["--check"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and START in missing.stderr
