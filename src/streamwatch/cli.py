"""Command line: `streamwatch replay | simulate | check | serve | demo | review`. No logic lives
here.

Exit codes (CONTRACTS §4): 0 success, 2 bad usage or invalid config/input, 1 anything else.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from streamwatch.exceptions import ConfigError, StreamwatchError

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Real-time monitoring for live-commerce streams.")


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="config/ directory")]
DetOpt = Annotated[Optional[Path], typer.Option("--detectors", help="detectors/ directory")]


def _fail(exc: StreamwatchError) -> None:
    if isinstance(exc, ConfigError):
        for p in exc.problems:
            typer.echo(p, err=True)
    else:
        typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(exc.exit_code)


@app.command()
def replay(input: Annotated[Path, typer.Argument(help="NDJSON samples or a timestamp,value CSV")],
           output: Annotated[Optional[Path], typer.Option("--output", "-o",
                                                          help="alert events NDJSON (default stdout)")] = None,
           scores: Annotated[Optional[Path], typer.Option("--scores",
                                                          help="CSV input: write timestamp,value,anomaly_score")] = None,
           config: ConfigOpt = None, detectors: DetOpt = None) -> None:
    """Run recorded samples through the live pipeline, on event time; write alert events."""
    from streamwatch.config.load import load_config
    from streamwatch.replay import ensure_input, replay_csv, replay_ndjson
    try:
        ensure_input(input)
        cfg = load_config(config, detectors)
        is_csv = input.suffix.lower() == ".csv"
        if scores is not None and not is_csv:
            typer.echo("error: --scores applies to CSV (timestamp,value) input only", err=True)
            raise typer.Exit(2)
        out = open(output, "wb") if output else sys.stdout.buffer
        try:
            if is_csv:
                summary = replay_csv(input, out, scores_path=scores, config=cfg)
            else:
                summary = replay_ndjson(input, out, config=cfg, progress=True)
        finally:
            if output:
                out.close()
            else:
                out.flush()
    except StreamwatchError as exc:
        _fail(exc)
    typer.echo(summary.line(), err=True)
    for line in summary.first_errors:
        typer.echo(f"  rejected: {line}", err=True)


@app.command()
def simulate(seed: Annotated[int, typer.Option(help="random seed")] = 1,
             rooms: Annotated[int, typer.Option(min=1, help="live rooms")] = 12,
             minutes: Annotated[float, typer.Option(min=1, help="session length")] = 90,
             out: Annotated[Path, typer.Option(help="output directory")] = Path("sim-out")) -> None:
    """Write a simulated session: OUT/samples.ndjson and OUT/labels.json."""
    from streamwatch.sim import write_session
    n, samples, labels = write_session(out, seed, rooms, minutes)
    typer.echo(f"wrote {n:,} samples to {samples} and ground truth to {labels}", err=True)


@app.command()
def check(config: ConfigOpt = None, detectors: DetOpt = None) -> None:
    """Validate config/ and detectors/; say exactly what is wrong where."""
    from streamwatch.config.load import load_config
    try:
        cfg = load_config(config, detectors)
    except StreamwatchError as exc:
        _fail(exc)
    typer.echo(f"ok: {cfg.config_dir} and {cfg.detectors_dir} ({len(cfg.rules)} rules)")


@app.command()
def serve(host: Annotated[Optional[str], typer.Option(help="bind address")] = None,
          port: Annotated[Optional[int], typer.Option(help="port")] = None,
          config: ConfigOpt = None, detectors: DetOpt = None,
          data_dir: Annotated[Optional[Path], typer.Option("--data-dir",
                                                           help="where state is kept")] = None,
          insecure_no_auth: Annotated[bool, typer.Option(
              "--insecure-no-auth",
              help="run without API tokens: anyone who can connect may do anything")] = False
          ) -> None:
    """The live service: push API, websocket alert feed, live-ops page, /metrics.

    Needs API tokens (env STREAMWATCH_API_TOKENS=role:token,... or [[auth.tokens]] in
    config/service.toml) unless --insecure-no-auth is given."""
    from dataclasses import replace

    from streamwatch.config.load import load_config
    from streamwatch.server import check_auth, run_server
    try:
        cfg = load_config(config, detectors)
        if insecure_no_auth:
            auth = cfg.service.auth.model_copy(update={"insecure_no_auth": True})
            cfg = replace(cfg, service=cfg.service.model_copy(update={"auth": auth}))
        check_auth(cfg)
    except StreamwatchError as exc:
        _fail(exc)
    srv = cfg.service.server
    run_server(cfg, host or srv.host, srv.port if port is None else port, data_dir=data_dir)


@app.command()
def demo(port: Annotated[int, typer.Option(help="port of the live-ops page")] = 8080,
         seed: Annotated[int, typer.Option(help="simulator seed")] = 7,
         rooms: Annotated[int, typer.Option(min=1)] = 12,
         minutes: Annotated[float, typer.Option(min=1)] = 90,
         speed: Annotated[float, typer.Option(min=0.1, help="simulated seconds per second")] = 1.0,
         offline: Annotated[bool, typer.Option(
             "--offline", help="replay a simulated session and print a table instead")] = False
         ) -> None:
    """The service fed by the built-in livestream simulator; prints the page's URL."""
    if offline:
        from streamwatch.demo import run_demo
        with tempfile.TemporaryDirectory(prefix="streamwatch-demo-") as tmp:
            run_demo(Path(tmp), seed, rooms, minutes)
        return
    from streamwatch.server import run_demo_server
    run_demo_server(port=port, seed=seed, rooms=rooms, minutes=minutes, speed=speed)


@app.command()
def review(data_dir: Annotated[Optional[Path], typer.Option(
               "--data-dir", help="the service's data dir (default: [storage] data_dir)")] = None,
           from_: Annotated[Optional[str], typer.Option(
               "--from", help="window start: unix seconds or RFC 3339 (default: to - 24 h)")
           ] = None,
           to: Annotated[Optional[str], typer.Option(
               "--to", help="window end, exclusive (default: now, or from + 24 h)")] = None,
           as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")
                              ] = False,
           config: ConfigOpt = None) -> None:
    """Response-speed review per team and level, read from the store (the service may run)."""
    import time

    import orjson

    from streamwatch.incidents.review import (TABLE_HEADER, BadBound, table_rows, window)
    from streamwatch.incidents.review import review as compute
    from streamwatch.store import DB_FILE, SqliteStore
    try:
        t0, t1 = window(from_, to, time.time())
    except BadBound as exc:
        typer.echo(f"error: --{exc.name}: {exc.message}", err=True)
        raise typer.Exit(2) from None
    try:
        if data_dir is None:
            from streamwatch.config.load import load_config
            data_dir = Path(load_config(config, None).service.storage.data_dir)
        db = data_dir / DB_FILE
        if not db.is_file():
            typer.echo(f"error: no store at {db} (give the service's --data-dir)", err=True)
            raise typer.Exit(2)
        store = SqliteStore(db)
        try:
            docs = [r.doc for r in store.load_incidents_started(t0, t1)]
        finally:
            store.close()
    except StreamwatchError as exc:
        _fail(exc)
    report = compute(docs, t0, t1)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        return
    from datetime import datetime, timezone

    from rich.console import Console
    from rich.table import Table

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")

    table = Table(title=f"Response-speed review 复盘  {iso(t0)} .. {iso(t1)}")
    for name in TABLE_HEADER:
        table.add_column(name, justify="left" if name in ("team", "level") else "right")
    for row in table_rows(report):
        table.add_row(*row, end_section=row[1] == "all")
    console = Console()
    console.print(table)
    console.print("escalations: steps notified (escalated = incidents with one or more); "
                  "false alarms: marked false_alarm=true or notes tagged #false-alarm / #误报; "
                  "level: the most severe reached.")


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
