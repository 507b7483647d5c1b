#!/usr/bin/env python
"""Detection-quality benchmark: simulate sessions, replay them, score alerts against the labels.

    python benchmarks/quality.py [--seeds 101 102 103] [--rooms 12] [--minutes 90] [--workdir DIR]
                                 [--reuse-sim] [--json FILE] [--strict] [--verbose]

Why it is built this way: the numbers must come from the same outside faces a user has (the
`streamwatch simulate` and `streamwatch replay` commands, CONTRACTS §4), so both run as
subprocesses and this script only reads their files. The default seeds are kept out of the test
suite so the pipeline cannot be tuned to them by accident. Every metric is defined in
`scoring.py`'s docstring; this file only orchestrates and prints. It is a report: exit 0 even when
a target fails, unless `--strict` (exit 1 on any FAIL). A failing step (simulate/replay crash)
exits 1 with the command that failed.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import scoring  # noqa: E402

# A report is often redirected to a file or CI log: keep it wide enough not to truncate names.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 132)
err = Console(stderr=True, highlight=False, soft_wrap=True)
STYLE = {"PASS": "green", "FAIL": "bold red", "n/a": "dim"}


class StepFailed(RuntimeError):
    """A simulate or replay subprocess exited non-zero: the report cannot be made."""


def streamwatch_env() -> dict[str, str]:
    """Environment for `python -m streamwatch`: add src/ to PYTHONPATH when not pip-installed."""
    env = dict(os.environ)
    if importlib.util.find_spec("streamwatch") is None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    return env


def run_step(tag: str, what: str, args: list[str], log: Path) -> float:
    """Run one streamwatch command; stdout goes to `log`, stderr (progress, errors) to the user."""
    cmd = [sys.executable, "-m", "streamwatch", *args]
    err.print(f"[bold]{tag}[/] {what} …")
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.run(cmd, stdout=fh, env=streamwatch_env(), cwd=ROOT, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        err.print(f"[bold]{tag}[/] [red]{args[0]} failed (exit {proc.returncode})[/]")
        raise StepFailed(f"{' '.join(cmd)} exited {proc.returncode} (stdout in {log})")
    err.print(f"[bold]{tag}[/] {args[0]} done in {dt:.1f} s")
    return dt


def run_seed(seed: int, i: int, n: int, args: argparse.Namespace) -> scoring.SessionScore:
    tag = escape(f"[seed {seed} {i}/{n}]")
    d = args.workdir / f"seed-{seed}-r{args.rooms}-m{args.minutes}"
    d.mkdir(parents=True, exist_ok=True)
    samples, labels_path, alerts = d / "samples.ndjson", d / "labels.json", d / "alerts.ndjson"
    if args.reuse_sim and samples.exists() and labels_path.exists():
        err.print(f"[bold]{tag}[/] simulate: reusing {d}")
    else:
        run_step(tag, f"simulate {args.rooms} rooms × {args.minutes} min",
                 ["simulate", "--seed", str(seed), "--rooms", str(args.rooms),
                  "--minutes", str(args.minutes), "--out", str(d)], d / "simulate.log")
    mb = samples.stat().st_size / 1e6
    run_step(tag, f"replay {samples.name} ({mb:.0f} MB)",
             ["replay", str(samples), "--output", str(alerts)], d / "replay.log")
    err.print(f"[bold]{tag}[/] score …", end=" ")
    labels, events = scoring.load_labels(labels_path), scoring.load_events(alerts)
    score = scoring.score_session(labels, events)
    err.print(f"{len(events)} alert events, {len(score.outcomes)} labelled incidents")
    return score


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    if v == float("inf"):
        return "∞"
    return f"{v:.1%}" if unit == "%" else f"{v:.2f}{unit}" if abs(v) < 100 else f"{v:.0f}{unit}"


def fmt_target(t: scoring.Target) -> str:
    unit = "%" if t.op == ">=" else ""
    return f"{fmt(t.value, unit)} [{STYLE[t.status]}]{t.status}[/]"


def groups_table(title: str, s: scoring.Summary) -> Table:
    tab = Table(title=title, title_justify="left")
    for col in ("incident group", "count", "detected", "median TTD", "TTD target",
                "team ok", "level ok", "silent (det.)"):
        tab.add_column(col, justify="left" if col == "incident group" else "right",
                       no_wrap=col == "incident group")
    for name, g in s.groups.items():
        limit = scoring.TTD_TARGETS_S.get(name)
        tab.add_row(name, str(g.count), str(g.detected), fmt(g.median_ttd_s, " s"),
                    f"≤ {limit:.0f} s" if limit else "", f"{g.team_ok}/{g.detected}",
                    f"{g.level_ok}/{g.detected}", f"{g.silent} ({g.silent_detected})" if g.silent else "")
    tab.add_row("[bold]all[/]", str(s.incidents), str(s.detected), "", "",
                f"{fmt(s.team_ok_rate, '%')}", f"{fmt(s.level_exact_rate, '%')}", "")
    tab.caption = (f"pages (firing L1–3): {s.pages} · level-4 notices: {s.notices} · "
                   f"level off by one: {fmt(s.level_off_by_one_rate, '%')} of detected · "
                   f"false pages: {s.false_pages} in {s.stream_hours:.1f} stream-hours")
    tab.caption_justify = "left"
    return tab


def targets_table(names: list[str], summaries: list[scoring.Summary]) -> Table:
    tab = Table(title="Targets (scoring.py docstring defines each)", title_justify="left")
    tab.add_column("target", no_wrap=True)
    tab.add_column("goal", justify="right", no_wrap=True)
    for name in names:
        tab.add_column(name, justify="right", no_wrap=True)
    per_col = [scoring.targets(s) for s in summaries]
    for row, t0 in enumerate(per_col[0]):
        goal = f"{t0.op} {t0.threshold:.0%}" if t0.op == ">=" else f"{t0.op} {t0.threshold:g}"
        tab.add_row(t0.name, goal, *(fmt_target(col[row]) for col in per_col))
    return tab


def false_pages_tables(score: scoring.SessionScore, s: scoring.Summary,
                       limit: int) -> list[Table | str]:
    by_stream = Table(title="False pages by stream (all seeds)", title_justify="left")
    for col in ("stream", "false pages", "per stream-hour"):
        by_stream.add_column(col, justify="left" if col == "stream" else "right")
    for stream, (n, rate) in list(s.false_pages_by_stream.items())[:limit]:
        by_stream.add_row(stream, str(n), fmt(rate))
    if len(s.false_pages_by_stream) > limit:
        by_stream.caption = f"… {len(s.false_pages_by_stream) - limit} more streams (--verbose)"
    by_cause = Table(title="False pages by likely cause (all seeds)", title_justify="left")
    by_cause.add_column("cause")
    by_cause.add_column("false pages", justify="right")
    by_type: dict[str, int] = {}
    for fp in score.false_pages:
        by_type[fp.incident_type] = by_type.get(fp.incident_type, 0) + 1
    for cause, n in sorted(s.false_pages_by_cause.items(), key=lambda kv: -kv[1]):
        by_cause.add_row(cause, str(n))
    alerted_as = "False pages were alerted as: " + ", ".join(
        f"{k or '?'} {v}" for k, v in sorted(by_type.items(), key=lambda kv: -kv[1]))
    return [by_stream, by_cause, alerted_as]


def missed_table(seeds: list[int], scores: list[scoring.SessionScore], limit: int) -> Table:
    tab = Table(title="Missed incidents", title_justify="left")
    for col in ("seed", "incident", "level", "start → end", "silent"):
        tab.add_column(col)
    missed = [(seed, o.incident) for seed, sc in zip(seeds, scores, strict=True)
              for o in sc.outcomes if not o.detected]
    for seed, inc in missed[:limit]:
        tab.add_row(str(seed), inc.id, str(inc.level),
                    f"{time.strftime('%H:%M:%S', time.gmtime(inc.start_ts))} → "
                    f"{time.strftime('%H:%M:%S', time.gmtime(inc.end_ts))}", "yes" if inc.silent else "")
    if len(missed) > limit:
        tab.caption = f"… {len(missed) - limit} more (--verbose)"
    return tab


def to_json(seeds: list[int], summaries: list[scoring.Summary], pooled: scoring.Summary,
            args: argparse.Namespace) -> dict[str, Any]:
    def block(s: scoring.Summary) -> dict[str, Any]:
        d = dataclasses.asdict(s)
        d["false_pages_by_stream"] = {k: {"count": n, "per_stream_hour": r}
                                      for k, (n, r) in s.false_pages_by_stream.items()}
        d["targets"] = [dataclasses.asdict(t) for t in scoring.targets(s)]
        return d
    return {"config": {"seeds": seeds, "rooms": args.rooms, "minutes": args.minutes},
            "pooled": block(pooled),
            "per_seed": {str(seed): block(s) for seed, s in zip(seeds, summaries, strict=True)},
            "pooled_pass": all(t.status != "FAIL" for t in scoring.targets(pooled))}


def finite(obj: Any) -> Any:
    """JSON has no infinity: an unbounded rate (no stream-hours) is written as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103],
                   help="simulator seeds (default 101 102 103; not used by the tests)")
    p.add_argument("--rooms", type=int, default=12, help="rooms per session (default 12)")
    p.add_argument("--minutes", type=int, default=90, help="session length (default 90)")
    p.add_argument("--workdir", type=Path, default=HERE / ".cache" / "quality",
                   help="where sessions and alerts are written (default benchmarks/.cache/quality)")
    p.add_argument("--reuse-sim", action="store_true",
                   help="reuse simulated sessions already in --workdir (replay always re-runs)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write pooled + per-seed numbers")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any target FAILs (any seed or pooled)")
    p.add_argument("--verbose", action="store_true", help="list every missed incident and stream")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seeds: list[int] = args.seeds
    scores: list[scoring.SessionScore] = []
    summaries: list[scoring.Summary] = []
    try:
        for i, seed in enumerate(seeds, 1):
            scores.append(run_seed(seed, i, len(seeds), args))
            summaries.append(scoring.summarize(scores[-1]))
            out.print(groups_table(f"Seed {seed}: {args.rooms} rooms × {args.minutes} min",
                                   summaries[-1]))
    except (StepFailed, OSError, ValueError, KeyError) as exc:
        err.print(f"[red]error:[/] {exc}")
        return 1
    pooled_score = sum(scores[1:], scores[0])
    pooled = scoring.summarize(pooled_score)
    limit = 10**9 if args.verbose else 12
    if len(seeds) > 1:
        out.print(groups_table(f"Pooled: seeds {' '.join(map(str, seeds))}", pooled))
    if pooled.false_pages:
        for tab in false_pages_tables(pooled_score, pooled, limit):
            out.print(tab)
    else:
        out.print("No false pages.")
    if pooled.detected < pooled.incidents:
        out.print(missed_table(seeds, scores, limit))
    names = [f"seed {s}" for s in seeds] + (["pooled"] if len(seeds) > 1 else [])
    out.print(targets_table(names, summaries + ([pooled] if len(seeds) > 1 else [])))
    columns = zip(names, summaries + ([pooled] if len(seeds) > 1 else []), strict=True)
    fails = [f"{name}: {t.name}" for name, s in columns for t in scoring.targets(s)
             if t.status == "FAIL"]
    out.print(f"[bold]{'ALL TARGETS PASS' if not fails else 'FAIL ' + '; '.join(fails)}[/]")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(finite(to_json(seeds, summaries, pooled, args)),
                                        indent=2, allow_nan=False) + "\n")
        err.print(f"wrote {args.json}")
    return 1 if args.strict and fails else 0


if __name__ == "__main__":
    sys.exit(main())
