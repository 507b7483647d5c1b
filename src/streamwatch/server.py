"""Running the app: uvicorn on the configured address, JSON logs, graceful shutdown.

`serve` and `demo` differ only in configuration: the demo adds the built-in simulator as a pull
source (embedded defaults, nothing to install), keeps its state in memory (a demo starts afresh
and leaves no files behind) and prints the page's URL. `serve` keeps its state under
`--data-dir`, else `[storage] data_dir` of config/service.toml (default ./data).

Access control: `run_server` refuses (ConfigError, exit 2) a config without API tokens unless
`auth.insecure_no_auth` is set (`serve --insecure-no-auth`), and then logs a loud warning. The
demo makes a random admin token for its run and prints the page URL carrying it.
"""
from __future__ import annotations

import json
import logging
import secrets
import sys
from dataclasses import replace
from pathlib import Path

from streamwatch.config.load import Config, load_config
from streamwatch.config.schema import SourceSettings, TokenEntry, token_digest
from streamwatch.exceptions import ConfigError

__all__ = ["run_server", "run_demo_server", "JsonLogFormatter", "check_auth", "NO_TOKENS"]

log = logging.getLogger("streamwatch.server")

NO_TOKENS = ("no API tokens are configured, and serve does not run an open service by "
             "accident: set STREAMWATCH_API_TOKENS=role:token[,role:token...] (roles: ingest, "
             "viewer, operator, admin) or [[auth.tokens]] in config/service.toml, or pass "
             "--insecure-no-auth to run without access control")


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


def check_auth(cfg: Config) -> None:
    """ConfigError unless the service has tokens or was explicitly told to run without."""
    auth = cfg.service.auth
    if not auth.tokens and not auth.insecure_no_auth:
        raise ConfigError([f"error: {NO_TOKENS}"])


def _announce_auth(cfg: Config, host: str) -> None:
    auth = cfg.service.auth
    if not auth.tokens:
        log.warning("ACCESS CONTROL IS OFF (--insecure-no-auth): anyone who can reach "
                    f"{host} may push samples, read incidents and act on them. Configure "
                    "STREAMWATCH_API_TOKENS for any real deployment.",
                    extra={"insecure_no_auth": True})
    else:
        log.info("access control on", extra={"tokens": len(auth.tokens),
                                             "metrics_public": cfg.service.server.metrics_public})
        if auth.insecure_no_auth:
            log.warning("--insecure-no-auth ignored: API tokens are configured and enforced")


def run_server(cfg: Config, host: str, port: int, *, data_dir: Path | None = None,
               banner: str | None = None, durable: bool = True) -> None:
    import uvicorn

    from streamwatch.api.app import create_app
    from streamwatch.service import Service
    check_auth(cfg)
    _logging()
    _tune_malloc()
    _announce_auth(cfg, host)
    where = (data_dir or Path(cfg.service.storage.data_dir)) if durable else None
    app = create_app(cfg, Service(cfg, data_dir=where))
    if banner:
        print(banner, flush=True)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False,
                ws="websockets-sansio", timeout_graceful_shutdown=10,
                ws_per_message_deflate=cfg.service.server.ws_compression)


def _tune_malloc() -> None:
    """A long-running service's heap: with glibc's default *dynamic* mmap threshold, freeing the
    first multi-MB block (a checkpoint's pickle) raises the threshold, later ones come from the
    heap and the heap fragments: +2 MB of RSS per checkpoint in the 10-minute soak. A fixed 2 MiB
    threshold sends such blocks to mmap and back to the system when freed (batch arrays stay
    below it). Not glibc (musl, macOS): nothing to do."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold = -3
    if mallopt(m_mmap_threshold, 2 << 20) != 1:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")


def run_demo_server(*, port: int, seed: int, rooms: int, minutes: float, speed: float) -> None:
    cfg = load_config()
    sim = SourceSettings(name="simulator", kind="simulator", seed=seed, rooms=rooms,
                         minutes=minutes, speed=speed)
    token = secrets.token_urlsafe(24)               # this run only; never written anywhere
    auth = cfg.service.auth.model_copy(update={"tokens": [
        *cfg.service.auth.tokens,
        TokenEntry(role="admin", sha256=token_digest(token), name="demo")]})
    cfg = replace(cfg, service=cfg.service.model_copy(update={"sources": [sim], "auth": auth}))
    url = f"http://127.0.0.1:{port}/"
    run_server(cfg, "127.0.0.1", port, durable=False, banner=(
        f"streamwatch demo: {rooms} simulated rooms, live on {url}?token={token}\n"
        f"  API token (admin, this run only): {token}  (Authorization: Bearer {token})\n"
        f"  API docs: {url}docs, metrics: {url}metrics; Ctrl-C to stop"))
