"""The live-ops page in a real headless Chromium, against a real server and a real incident.

The browser is Debian's `chromium` (scripts/ensure-chromium.sh installs it; without it the browser
test skips and says why), driven over the DevTools protocol with the `websockets` client we
already depend on - no browser-automation package. The server is the real app on uvicorn on a
free port; samples go in through `Service.submit`, so the alert reaches the page the only way it
can: over the websocket feed. Every wait polls the DOM with a deadline; Chromium is killed (its
whole process group) whatever happens.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
from base64 import b64decode
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
import websockets
from fastapi import FastAPI

from streamwatch.api.app import create_app
from streamwatch.api.page import CSP
from streamwatch.config.load import load_config
from streamwatch.config.schema import AuthSettings, TokenEntry, token_digest
from streamwatch.ingest.batch import Batch
from streamwatch.service import Service
from tests.pipeline.scenario import T0, Effect, Room, samples

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "src" / "streamwatch" / "web"
CHROMIUM = Path("/usr/bin/chromium")
AT = 20 * 60.0                     # room-a's stream collapses 20 minutes in (event time)
TOKEN = "page-test-token"


# -- a real server ----------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def serve(app: FastAPI, port: int = 0) -> AsyncIterator[str]:
    """uvicorn in this event loop (on a free port by default); yields the base URL, stops
    gracefully on exit (the lifespan drains and stops the Service)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                           ws="websockets-sansio", lifespan="on",
                                           timeout_graceful_shutdown=5))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await task
        sock.close()


async def wait_until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll a condition on the Service (same event loop) with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.02)


def make_service() -> Service:
    """The repo's config with access control on: the page must pass its `?token=` (a viewer
    token) to the feed and to its fetches, or it sees nothing."""
    cfg = load_config(REPO / "config", REPO / "detectors", env={})
    auth = AuthSettings(tokens=[TokenEntry(role="viewer", sha256=token_digest(TOKEN))])
    return Service(replace(cfg, service=cfg.service.model_copy(update={"auth": auth})))


# -- a headless Chromium over the DevTools protocol -------------------------------------------
class Browser:
    """One Chromium process with one page, spoken to over DevTools (flattened sessions)."""

    def __init__(self, profile: Path, budget: float = 45.0) -> None:
        self.profile = profile
        self.budget = budget                 # seconds for everything one test asks of it
        self.deadline = float("inf")
        self.proc: asyncio.subprocess.Process | None = None
        self.ws: Any = None
        self.session = ""
        self.errors: list[str] = []          # JS exceptions, console errors, CSP violations
        self.network_errors: list[str] = []  # failed loads (404, refused, ...)
        self.websockets: list[str] = []      # URL of every websocket the page opened
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self, width: int = 1400, height: int = 1000) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--mute-audio", "--hide-scrollbars", "--remote-debugging-port=0",
            f"--window-size={width},{height}", f"--user-data-dir={self.profile}", "about:blank",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        assert self.proc.stderr is not None
        self.deadline = asyncio.get_running_loop().time() + self.budget
        url, seen = None, []
        async with asyncio.timeout(20):
            while url is None:
                line = (await self.proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise AssertionError(f"chromium exited before DevTools was up: {seen[-5:]}")
                seen.append(line.strip())
                if m := re.search(r"DevTools listening on (ws://\S+)", line):
                    url = m.group(1)
        self._drain = asyncio.create_task(self._drain_stderr())
        self.ws = await websockets.connect(url, max_size=64 << 20, ping_interval=None)
        self._reader = asyncio.create_task(self._read())
        target = await self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = await self.send("Target.attachToTarget",
                                   {"targetId": target["targetId"], "flatten": True},
                                   session=False)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            await self.send(f"{domain}.enable")

    async def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while await self.proc.stderr.readline():
            pass

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            fut = self._waiting.pop(msg.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            elif msg.get("method") == "Runtime.exceptionThrown":
                d = msg["params"]["exceptionDetails"]
                self.errors.append(d.get("exception", {}).get("description") or d["text"])
            elif (msg.get("method") == "Log.entryAdded"
                  and msg["params"]["entry"]["level"] == "error"):
                entry = msg["params"]["entry"]
                (self.network_errors if entry["source"] == "network" else self.errors).append(
                    f"{entry['text']} {entry.get('url', '')}")
            elif msg.get("method") == "Network.webSocketCreated":
                self.websockets.append(msg["params"]["url"])
            elif (msg.get("method") == "Runtime.consoleAPICalled"
                  and msg["params"]["type"] == "error"):
                self.errors.append(str(msg["params"]["args"]))

    async def send(self, method: str, params: dict[str, Any] | None = None, *,
                   session: bool = True) -> dict[str, Any]:
        mid = next(self._ids)
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        fut = self._waiting[mid] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps(msg))
        async with asyncio.timeout(self._left(10)):
            reply = await fut
        if "error" in reply:
            raise AssertionError(f"DevTools {method}: {reply['error']}")
        return reply["result"]  # type: ignore[no-any-return]

    def _left(self, timeout: float) -> float:
        """`timeout`, cut to what is left of the budget: the test is bounded as a whole."""
        left = self.deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError(f"the browser test ran past its {self.budget} s budget")
        return min(timeout, left)

    async def eval(self, expression: str) -> Any:
        r = await self.send("Runtime.evaluate", {"expression": expression,
                                                 "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 10.0) -> Any:
        """Poll a JS expression until it is truthy; fail with the page's status line."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._left(timeout)
        while loop.time() < deadline:
            if value := await self.eval(expression):
                return value
            await asyncio.sleep(0.05)
        status = await self.eval("document.getElementById('status')?.textContent")
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                             f"page status: {status!r}; page errors: {self.errors}")

    async def click(self, selector: str) -> None:
        """A real (trusted) mouse click, which counts as the user's gesture for audio."""
        box = await self.eval("(() => { const r = document.querySelector(%s)"
                              ".getBoundingClientRect(); return [r.x + r.width / 2, "
                              "r.y + r.height / 2]; })()" % json.dumps(selector))
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                         "button": "left", "clickCount": 1})

    async def screenshot(self, path: Path) -> None:
        r = await self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(b64decode(r["data"]))

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        for task in (self._reader, getattr(self, "_drain", None)):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: run scripts/ensure-chromium.sh (as root with apt) "
                    "to install Debian's chromium")
    b = Browser(tmp_path / "profile")
    try:
        await b.start()
        yield b
    finally:
        await b.close()


# -- the scenario -----------------------------------------------------------------------------
def scenario() -> Batch:
    """Four rooms of 24 event-time minutes; room-a's bitrate and fps collapse at minute 20 and
    stay down (an open level-1 tech incident), its viewers falling 20 s later."""
    outage = [Effect("bitrate_kbps", AT, 1e9, 0.1), Effect("fps", AT, 1e9, 0.2),
              Effect("viewers", AT + 20, 1e9, 0.4)]
    rooms = [Room("room-a", minutes=24, effects=outage)]
    rooms += [Room(f"room-{k}", minutes=24, viewers=v) for k, v in zip("bcd", (8000, 3000, 1500))]
    return samples(rooms)


def chunks(batch: Batch, edges: list[float]) -> list[Batch]:
    """The batch cut at event-time offsets (seconds after T0), in order."""
    cuts = np.searchsorted(batch.ts, [T0 + e for e in edges])
    bounds = [0, *cuts.tolist(), len(batch)]
    return [Batch(batch.streams[a:b], batch.metrics[a:b], batch.ts[a:b], batch.values[a:b],
                  batch.labels[a:b], batch.positions[a:b])
            for a, b in itertools.pairwise(bounds) if b > a]


# -- tests ------------------------------------------------------------------------------------
async def test_page_shows_a_level_1_alert_that_arrives_over_the_websocket(
        browser: Browser, tmp_path: Path) -> None:
    service = make_service()
    async with serve(create_app(service.config, service)) as base:
        await browser.send("Page.navigate", {"url": f"{base}/?token={TOKEN}&poll=0.5"})
        await browser.wait_for("document.body?.dataset.ws === 'open'", "the feed to connect")
        await browser.wait_for("window.streamwatchPage.events === 0 && "
                               "document.querySelectorAll('#teams .team').length === 5",
                               "the five team columns")
        await browser.click("#sound")
        await browser.wait_for("window.streamwatchPage.audio?.state === 'running'",
                               "audio to be allowed after the click")

        # quiet minutes in steps, each seen by at least one room poll: the sparklines
        parts = chunks(scenario(), [60.0 * m for m in range(14, 20)])
        for part in parts[:-1]:
            polls = await browser.eval("window.streamwatchPage.polls")
            assert service.submit(part)
            await browser.wait_for(f"window.streamwatchPage.polls >= {polls + 2}", "a room poll")
        assert await browser.eval("document.querySelectorAll('#feed li.alert').length") == 0
        assert not service.incidents.open(), "the quiet minutes raise nothing"

        assert service.submit(parts[-1])       # minutes 19-24: room-a's stream collapses at 20
        iid = await browser.wait_for(
            "document.querySelector('#feed li.alert.lvl-1[data-status=firing]')"
            "?.dataset.incidentId", "a level-1 alert in the feed")
        opened = service.incidents.open()
        assert [i["id"] for i in opened] == [iid], "the page shows the service's incident"
        assert opened[0]["team"] == "tech" and opened[0]["stream"] == "room-a"
        await browser.wait_for(f"document.querySelector('#team-tech [data-incident-id=\"{iid}\"]')"
                               " !== null", "the incident in the tech column")
        await browser.wait_for("document.querySelector('#rooms tr[data-stream=\"room-a\"]')"
                               "?.classList.contains('has-open')", "room-a marked as open")
        page = await browser.eval("""(() => {
            const s = window.streamwatchPage, a = s.rooms.get('room-a');
            return {banner: !document.getElementById('banner').hidden,
                    bannerText: document.getElementById('banner-text').textContent,
                    events: s.events, lastId: s.lastId, beeps: s.beeps,
                    status: document.getElementById('status').textContent,
                    otherColumns: document.querySelectorAll(
                        '#teams .team:not(#team-tech) [data-incident-id]').length,
                    rooms: [...document.querySelectorAll('#rooms tbody tr')]
                        .map(r => r.dataset.stream),
                    lines: document.querySelectorAll('#rooms svg.spark polyline').length,
                    viewerPoints: a.viewers.filter(v => v !== null).length,
                    gmvPoints: a.gmv.filter(v => v !== null).length};
        })()""")
        assert page["banner"] and "room-a" in page["bannerText"], page
        assert page["events"] >= 1 and page["lastId"] == service.log.last_id, page
        assert page["beeps"] >= 2, "a beep on enabling sound, one for the level-1 alert"
        n = page["events"]
        assert page["status"].startswith(f"● connected · {n} event{'s' * (n != 1)} seen · "
                                         "1 open incident"), page
        assert page["otherColumns"] == 0, page
        assert len(browser.websockets) == 1 and f"token={TOKEN}" in browser.websockets[0]
        assert page["rooms"] == ["room-a", "room-b", "room-c", "room-d"], page
        assert page["lines"] == 8 and page["viewerPoints"] >= 6 and page["gmvPoints"] >= 6, page
        assert browser.errors == [] and browser.network_errors == [], browser.errors

        shot = tmp_path / "page.png"
        await browser.screenshot(shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":     # the README's picture, on request
            (REPO / "docs").mkdir(exist_ok=True)
            shutil.copyfile(shot, REPO / "docs" / "page.png")


async def test_page_resumes_after_a_restart_without_missing_or_repeating_alerts(
        browser: Browser) -> None:
    """The page opens on an incident already firing (the snapshot shows it); the server goes
    away; the incident resolves while the page is cut off; the page comes back with `since=`
    and shows the resolution exactly once. Then a really restarted service, numbering its
    events from 1 again: its first alert is shown, not taken for a repeat."""
    service = make_service()
    outage = [Effect("bitrate_kbps", AT, AT + 120, 0.1), Effect("fps", AT, AT + 120, 0.2)]
    before, after = chunks(samples([Room("room-a", minutes=26, effects=outage),
                                    Room("room-b", minutes=26)]), [AT + 60])
    feed = "JSON.stringify([...document.querySelectorAll('#feed li.alert')]" \
           ".map(li => li.dataset.status))"
    async with serve(create_app(service.config, service)) as base:
        port = int(base.rsplit(":", 1)[1])
        assert service.submit(before)
        await wait_until(lambda: service.incidents.open(), "the incident to open")
        firing = service.log.last_id
        await browser.send("Page.navigate", {"url": f"{base}/?token={TOKEN}&poll=0.5"})
        await browser.wait_for("document.body?.dataset.ws === 'open' && document.querySelector("
                               "'#team-tech .incident.lvl-1') && !document.getElementById("
                               "'banner').hidden", "the snapshot's incident in the tech column")
        assert await browser.eval(feed) == "[]", "the snapshot is state, not feed history"
    await browser.wait_for("document.body.dataset.ws === 'reconnecting' && "
                           "/reconnecting in/.test(document.getElementById('status').textContent)",
                           "the page to notice the drop")

    await service.start()                  # the pipeline runs on while the page is cut off
    assert service.submit(after)
    await wait_until(lambda: not service.incidents.open(), "the incident to resolve")
    await service.stop()
    resolved = service.log.last_id

    async with serve(create_app(service.config, service), port=port):
        await browser.wait_for(f"{feed} === '[\"resolved\"]'",
                               "the resolution missed while disconnected", timeout=20)
        state = await browser.eval("""(() => ({
            ws: document.body.dataset.ws, events: window.streamwatchPage.events,
            lastId: window.streamwatchPage.lastId,
            open: document.querySelectorAll('#teams [data-incident-id]').length,
            banner: !document.getElementById('banner').hidden}))()""")
        assert state == {"ws": "open", "events": 1, "lastId": resolved, "open": 0,
                         "banner": False}, state
        first, *retries = browser.websockets
        assert "since=" not in first and retries, browser.websockets
        assert retries[-1].endswith(f"?token={TOKEN}&since={firing}"), retries
        assert browser.errors == [], browser.errors

    fresh = make_service()               # restarted for real: a new event log, ids from 1 again
    async with serve(create_app(fresh.config, fresh), port=port):
        await browser.wait_for("document.body.dataset.ws === 'open' && "
                               "window.streamwatchPage.connLast === null",
                               "the page to reconnect to the restarted service", timeout=20)
        assert fresh.submit(before)
        await browser.wait_for(f"{feed} === '[\"firing\",\"resolved\"]'",
                               "the restarted service's first alert (an id the page saw before)")
        last = await browser.eval("window.streamwatchPage.lastId")
        assert last == fresh.log.last_id and last <= resolved, last
        assert "restarted" in await browser.eval("document.querySelector('#feed li.note')"
                                                 "?.textContent")
        assert browser.errors == [], browser.errors


async def test_page_and_assets_are_served_with_a_strict_policy() -> None:
    service = make_service()
    async with serve(create_app(service.config, service)) as base, \
            httpx.AsyncClient(base_url=base) as http:
        r = await http.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["referrer-policy"] == "no-referrer"   # the token is in the page URL
        assert '<script src="/static/app.js"' in r.text
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
            a = await http.get(f"/static/{name}")
            assert a.status_code == 200 and a.headers["content-type"].startswith(kind)
            assert a.content == (WEB / name).read_bytes()
        schema = (await http.get("/openapi.json")).json()
        assert "/" not in schema.get("paths", {}) and "/static/{name}" not in schema["paths"]


async def test_anything_else_under_static_is_404() -> None:
    service = make_service()
    async with serve(create_app(service.config, service)) as base, \
            httpx.AsyncClient(base_url=base) as http:
        for path in ("/static/nope.js", "/static/index.html", "/static/", "/static/APP.JS",
                     "/static/..%2Fapi%2Fpage.py", "/static/%2e%2e/app.js", "/static/app.js/x",
                     "/static/..%2F..%2Fpyproject.toml", "/static/app.js%00.css"):
            r = await http.get(path)
            assert r.status_code == 404, (path, r.status_code, r.text[:200])
            assert "import" not in r.text and "<html" not in r.text, path


def test_page_loads_nothing_from_the_internet() -> None:
    """No CDN, fonts or scripts from elsewhere: the ops room may be offline."""
    for f in WEB.iterdir():
        text = f.read_text(encoding="utf-8")
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (f.name, urls)
        assert "@import" not in text and "innerHTML" not in text, f.name
