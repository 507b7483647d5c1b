"""The harness of benchmarks/faults.py: processes and servers, no scenario (faultcheck.py has
the ground truth and the comparison).

- `Serve`: the real `python -m streamwatch serve` on a free port of 127.0.0.1 (kill -9 or
  SIGTERM), `InProcess`: the real app on uvicorn in a thread of this process, for the one fault
  that needs a hand on the store's own connection (SQLite's page cap is per connection).
- `Api`: the outside faces (CONTRACTS §5) with an admin token; `Feed`: a websocket client on
  its own thread that keeps every alert event it gets (optionally resuming with `since=`).
- `FaultServer`: a pull-source endpoint whose every answer a scenario scripts (good samples,
  garbage, 500s, hanging); `Receiver`: a webhook receiver that can be down (its port bound but
  not listening: connections refused) and counts what it took per Idempotency-Key.
Every wait has a deadline; every process and thread started here is ended by `close_all`.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOKEN = "faults-admin-" + secrets.token_hex(12)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = time.monotonic()
EXTRA_ENV: dict[str, str] = {}     # given to every service (faults.py --env)

__all__ = ["Serve", "InProcess", "Api", "Feed", "FaultServer", "Receiver", "HANG", "log",
           "wait", "close_all", "child_env", "TOKEN", "ROOT", "config_dir", "EXTRA_ENV"]

_CLEANUP: list[Callable[[], None]] = []


def log(msg: str) -> None:
    print(f"[faults {time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def close_all() -> None:
    while _CLEANUP:
        try:
            _CLEANUP.pop()()
        except Exception as exc:  # noqa: BLE001 - cleanup goes on
            log(f"cleanup: {exc!r}")


def wait(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll until `cond()` is truthy (returned) or the deadline passes (None, logged)."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            log(f"gave up after {timeout:g}s waiting for {what}")
            return None
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_dir(workdir: Path, name: str, sources_toml: str = "") -> Path:
    """A copy of the repository's config/ with `sources_toml` as its sources.toml."""
    d = workdir / f"config-{name}"
    d.mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "config").iterdir():
        if f.is_file() and f.name != "sources.toml":
            (d / f.name).write_bytes(f.read_bytes())
    (d / "sources.toml").write_text(sources_toml)
    return d


# -- the service ----------------------------------------------------------------------------
class Api:
    """The outside faces with the admin token."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, headers=AUTH, timeout=10.0)
        _CLEANUP.append(self.http.close)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):]

    def push(self, lines: Iterable[bytes]) -> tuple[int, dict[str, Any]]:
        r = self.http.post("/v1/samples", content=b"\n".join(lines),
                           headers={"Content-Type": "application/x-ndjson"})
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, {}

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def metrics(self) -> dict[str, float]:
        out = {}
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith("streamwatch_"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert event the service holds, oldest first (paged with since=)."""
        out: list[dict[str, Any]] = []
        since = "0" * 12
        while True:
            page = self.get("/v1/alerts", since=since, limit=1000)
            out += page["items"]
            if not page["items"] or page.get("next") in (None, since):
                return out
            since = page["next"]

    def incidents(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.get("/v1/incidents", limit=1000, **({"cursor": cursor} if cursor else {}))
            out += page["items"]
            cursor = page.get("next")
            if not cursor:
                return out

    def store(self) -> dict[str, Any]:
        return dict(self.get("/readyz").get("store") or {})

    def drained(self) -> bool:
        return int(self.get("/readyz").get("queued_samples", 1)) == 0


def child_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(ROOT / "src"), env.get("PYTHONPATH"))
                                        if x)
    env["STREAMWATCH_API_TOKENS"] = f"admin:{TOKEN}"
    env.update(EXTRA_ENV)
    env.update(extra or {})
    return env


class Serve(Api):
    """`streamwatch serve` as a child process; stderr/stdout to WORKDIR/NAME.log."""

    def __init__(self, workdir: Path, name: str, data_dir: Path, config: Path,
                 env: dict[str, str] | None = None, ready_s: float = 60.0) -> None:
        port = free_port()
        super().__init__(f"http://127.0.0.1:{port}")
        self.logfile = workdir / f"{name}.log"
        self.out = open(self.logfile, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamwatch", "serve", "--port", str(port), "--config",
             str(config), "--detectors", str(ROOT / "detectors"), "--data-dir", str(data_dir)],
            stdout=self.out, stderr=subprocess.STDOUT, env=child_env(env), cwd=workdir)
        _CLEANUP.append(self.kill9)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name}: serve exited {self.proc.returncode}: "
                                   f"{self.logfile.read_text(errors='replace')[-1500:]}")
            try:
                return self.http.get("/readyz", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False
        if not wait(ready, ready_s, f"{name}'s /readyz", 0.1):
            raise RuntimeError(f"{name}: /readyz not 200 within {ready_s}s")

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.out.close()

    def term(self, grace: float = 20.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.out.close()
        return self.proc.returncode


class InProcess(Api):
    """The real app (create_app + Service + uvicorn) on an event loop this object owns, so a
    scenario can run code on the service's thread (`call`)."""

    def __init__(self, data_dir: Path, logfile: Path, env: dict[str, str] | None = None
                 ) -> None:
        import logging

        import uvicorn

        from streamwatch.api.app import create_app
        from streamwatch.config.load import load_config
        from streamwatch.service import Service
        cfg = load_config(ROOT / "config", ROOT / "detectors", env=child_env(env))
        self.service = Service(cfg, data_dir=data_dir)
        logger = logging.getLogger("streamwatch")        # its log to a file, as serve's is
        if not any(isinstance(h, logging.FileHandler) for h in logger.handlers):
            logger.addHandler(logging.FileHandler(logfile))
            logger.setLevel(logging.INFO)
            logger.propagate = False
        app = create_app(cfg, self.service)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        super().__init__(f"http://127.0.0.1:{sock.getsockname()[1]}")
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                                    lifespan="on"))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(self.server.serve(sockets=[sock])),
            daemon=True, name="faults-inprocess")
        self.thread.start()
        _CLEANUP.append(self.stop)
        if not wait(lambda: self._ready(), 60, "the in-process app's /readyz", 0.1):
            raise RuntimeError("in-process app not ready")

    def _ready(self) -> bool:
        try:
            return self.http.get("/readyz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(30)


class Feed(threading.Thread):
    """A websocket client of the alert feed: `events` in arrival order; `since` resumes."""

    def __init__(self, api: Api, since: str | None = None) -> None:
        super().__init__(daemon=True, name="faults-feed")
        q = f"?token={TOKEN}" + (f"&since={since}" if since else "")
        self.url = f"{api.ws_url}/v1/alerts/stream{q}"
        self.events: list[dict[str, Any]] = []
        self.snapshot = threading.Event()
        self.closed: str | None = None
        self._halt = threading.Event()
        self.start()
        _CLEANUP.append(self.stop)
        if not self.snapshot.wait(15):
            raise RuntimeError(f"no snapshot from {self.url}: {self.closed}")

    def run(self) -> None:
        from websockets.sync.client import connect
        try:
            with connect(self.url, open_timeout=10, max_size=None) as ws:
                while not self._halt.is_set():
                    try:
                        msg = json.loads(ws.recv(0.2))
                    except TimeoutError:
                        continue
                    if msg.get("type") == "snapshot":
                        self.snapshot.set()
                    elif msg.get("type") == "alert":
                        self.events.append(msg)
        except Exception as exc:  # noqa: BLE001 - a killed server ends the feed: noted
            self.closed = f"{type(exc).__name__}: {exc}"[:200]
        self.snapshot.set()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


# -- fault-side servers ---------------------------------------------------------------------
HANG = object()
Answer = Any          # (status, body) | (status, body, headers) | (HANG, seconds)


class FaultServer:
    """One endpoint per path; `routes[path](n)` scripts the n-th answer (1-based)."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[int], Answer]] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                with outer.lock:
                    outer.hits[self.path] += 1
                    n = outer.hits[self.path]
                route = outer.routes.get(self.path)
                res = route(n) if route else (404, b"not found")
                if res[0] is HANG:
                    outer.stopping.wait(res[1])    # then close without an answer
                    return
                status, body = res[0], res[1]
                self.send_response(status)
                for k, v in (res[2] if len(res) > 2 else {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        _CLEANUP.append(self.close)

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class Receiver:
    """A webhook receiver: down (port bound, not listening: connection refused) until `up()`;
    then answers 200 and keeps, per Idempotency-Key, how many times it took it."""

    def __init__(self) -> None:
        self.taken: Counter[str] = Counter()
        self.events: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key", "")
                with outer.lock:
                    outer.taken[key] += 1
                    outer.events.setdefault(key, json.loads(body or b"{}"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.httpd.daemon_threads = True
        self.httpd.server_bind()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.running = False
        _CLEANUP.append(self.close)

    def up(self) -> None:
        self.httpd.server_activate()
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self.running = True

    def close(self) -> None:
        if self.running:
            self.httpd.shutdown()
        self.httpd.server_close()
