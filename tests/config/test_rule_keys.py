"""Unknown keys in detector rule files are refused, not silently dropped.

A rule's method keys ride on the rule and reach the method's Params model, which ignores what it
does not know (a file's `[defaults]` is shared by rules of several methods). Without a check, a
typo like `windw = "5m"` left the detector on its default window and `streamwatch check` said ok.
These tests feed real files through the real loader and CLI.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamwatch.config.load import load_config
from streamwatch.config.rules import Rule, load_rules_file
from streamwatch.detect.registry import check_rule
from streamwatch.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[2]
_RULE = '[[rule]]\nname = "drop"\nmetric = "viewers"\nmethod = "baseline"\nlevels = { 2 = 0.5 }\n'


def _problems(tmp_path: Path, text: str) -> list[str]:
    det = tmp_path / "detectors"
    det.mkdir()
    (det / "bad.toml").write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(REPO / "config", det, env={})
    return exc.value.problems


@pytest.mark.parametrize("text,expected", [
    # a typo of a method key: file, rule (index and name), key, value and the key meant
    (_RULE + 'windw = "5m"\n',
     "detectors/bad.toml: rule[0].windw = '5m': unknown key in rule 'drop' (method baseline); "
     "did you mean 'window'?"),
    # a typo of a rule key lands among the method keys too, and is caught the same way
    (_RULE + 'min_duraton = "30s"\n',
     "detectors/bad.toml: rule[0].min_duraton = '30s': unknown key in rule 'drop' (method "
     "baseline); did you mean 'min_duration'?"),
    # a real key, of another method: says whose it is rather than guessing
    (_RULE + "ratio = 0.2\n",
     "detectors/bad.toml: rule[0].ratio = 0.2: unknown key in rule 'drop' (method baseline); "
     "'ratio' is a key of method count, not of baseline"),
    # nothing close: the valid keys are listed
    (_RULE + "colour = 1\n",
     "detectors/bad.toml: rule[0].colour = 1: unknown key in rule 'drop' (method baseline); "
     "rule keys: clear_after, direction, levels, method, metric, min_duration, name, team; "
     "method baseline keys: adapt, fast, floor, protect, ramp, warmup, window, z_min"),
    # a rule entry that is not a table is a located problem, not a crash (exit 1)
    ("rule = [1]\n", "detectors/bad.toml: rule[0] = 1: must be a table ([[rule]])"),
])
def test_unknown_rule_key_is_named_with_the_key_meant(tmp_path: Path, text: str,
                                                      expected: str) -> None:
    problems = _problems(tmp_path, text)
    assert expected in problems, problems


def test_a_typo_in_defaults_is_reported_once_not_per_rule(tmp_path: Path) -> None:
    text = ('[defaults]\nmethod = "baseline"\nwindw = "5m"\n'
            + "".join(f'[[rule]]\nname = "r{i}"\nmetric = "viewers"\nlevels = {{ 2 = 0.5 }}\n'
                      for i in range(3)))
    problems = _problems(tmp_path, text)
    assert problems == ["detectors/bad.toml: defaults.windw = '5m': unknown key; "
                        "did you mean 'window'?"], problems


def test_defaults_reach_only_the_rules_whose_method_takes_them() -> None:
    """interaction.toml's [defaults] has baseline keys (`fast`) and a count rule: the count
    rule loads without them, the baseline rules inherit them."""
    rules, problems = load_rules_file(REPO / "detectors" / "interaction.toml")
    assert problems == []
    by_name = {r.name: r for r in rules}
    assert by_name["comments_collapse"].method == "count"
    assert "fast" not in by_name["comments_collapse"].extra()
    assert by_name["comments_collapse"].extra()["window"] == "20m"      # its own key stays
    assert by_name["comments_burst"].extra()["fast"] == "30s"          # inherited


def test_every_shipped_rule_and_config_directory_still_loads() -> None:
    """The repository's files and the packaged defaults pass the stricter check (load_config
    raises ConfigError on any problem) and keep every rule."""
    for config_dir, detectors_dir in [(REPO / "config", REPO / "detectors"), (None, None)]:
        cfg = load_config(config_dir, detectors_dir, env={})     # None: the packaged defaults
        assert len(cfg.rules) == 21, [r.name for r in cfg.rules]


def test_check_rule_refuses_unknown_keys_of_a_rule_built_in_code() -> None:
    rule = Rule(name="x", metric="orders_total", method="count", direction="down",
                levels={2: 5.0}, source="code: rule[0]", warmpu="5m")  # type: ignore[call-arg]
    assert check_rule(rule) == ["code: rule[0].warmpu = '5m': unknown key in rule 'x' (method "
                                "count); did you mean 'warmup'?"]
    good = Rule(name="x", metric="orders_total", method="count", direction="down",
                levels={2: 5.0}, source="code: rule[0]", warmup="5m", per="viewers",
                per_gauge=True)                                 # type: ignore[call-arg]
    assert check_rule(good) == []      # `per_gauge` is derived, but a rule may still set it


def test_streamwatch_check_exits_2_naming_the_typo(tmp_path: Path) -> None:
    """CONTRACTS §4: invalid config exits 2, and `check` says what is wrong where."""
    det = tmp_path / "detectors"
    det.mkdir()
    (det / "audience.toml").write_text(_RULE + 'windw = "5m"\n')
    res = subprocess.run([sys.executable, "-m", "streamwatch", "check", "--config",
                          str(REPO / "config"), "--detectors", str(det)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "ok:" not in res.stdout
    assert ("detectors/audience.toml: rule[0].windw = '5m': unknown key in rule 'drop' "
            "(method baseline); did you mean 'window'?") in res.stderr.splitlines()
