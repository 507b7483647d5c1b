"""Running the app: uvicorn on the configured address, JSON logs, graceful shutdown.

`serve` and `demo` differ only in configuration: the demo adds the built-in simulator as a pull
source (embedded defaults, nothing to install) and prints the page's URL.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

from streamwatch.config.load import Config, load_config
from streamwatch.config.schema import SourceSettings

__all__ = ["run_server", "run_demo_server", "JsonLogFormatter"]


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and any `extra=` fields."""
    _SKIP = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(),
               "logger": record.name, "msg": record.getMessage()}
        out.update({k: v for k, v in vars(record).items()
                    if k not in self._SKIP and k != "color_message"})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def _logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def run_server(cfg: Config, host: str, port: int, *, data_dir: Path | None = None,
               banner: str | None = None) -> None:
    import uvicorn

    from streamwatch.api.app import create_app
    _logging()
    app = create_app(cfg)
    if banner:
        print(banner, flush=True)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False,
                ws="websockets-sansio", timeout_graceful_shutdown=10,
                ws_per_message_deflate=cfg.service.server.ws_compression)


def run_demo_server(*, port: int, seed: int, rooms: int, minutes: float, speed: float) -> None:
    cfg = load_config()
    sim = SourceSettings(name="simulator", kind="simulator", seed=seed, rooms=rooms,
                         minutes=minutes, speed=speed)
    cfg = replace(cfg, service=cfg.service.model_copy(update={"sources": [sim]}))
    url = f"http://127.0.0.1:{port}/"
    run_server(cfg, "127.0.0.1", port, banner=(
        f"streamwatch demo: {rooms} simulated rooms, live on {url}  (API docs: {url}docs, "
        f"metrics: {url}metrics; Ctrl-C to stop)"))
