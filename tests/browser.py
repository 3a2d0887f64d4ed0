"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for tests of what a
person looks at: open a page, record every request it makes and every console error, read the
DOM, take a screenshot. The protocol is spoken with aiohttp's websocket client (a dependency
already), so no browser-driver package or downloaded browser is needed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

START_TIMEOUT_S = 30.0
LOAD_TIMEOUT_S = 30.0
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageVisit:
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    values: object = None  # what `expression` evaluated to
    screenshot: bytes = b""


class _Session:
    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self.loaded = asyncio.Event()

    async def pump(self) -> None:
        async for message in self._socket:
            data = json.loads(message.data)
            if "id" in data:
                self._replies.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)
                if data["method"] == "Page.loadEventFired":
                    self.loaded.set()

    async def call(self, method: str, **params) -> dict:
        ident = next(self._ids)
        reply = asyncio.get_running_loop().create_future()
        self._replies[ident] = reply
        await self._socket.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        answer = await asyncio.wait_for(reply, LOAD_TIMEOUT_S)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]


async def _visit(port: int, url: str, expression: str, width: int, height: int) -> PageVisit:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as answer:
            target = next(t for t in await answer.json() if t["type"] == "page")
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as socket:
            session = _Session(socket)
            pump = asyncio.create_task(session.pump())
            for domain in ("Page", "Network", "Runtime", "Log"):
                await session.call(f"{domain}.enable")
            await session.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                               deviceScaleFactor=1, mobile=False)
            await session.call("Page.navigate", url=url)
            await asyncio.wait_for(session.loaded.wait(), LOAD_TIMEOUT_S)
            visit = PageVisit()
            evaluated = await session.call("Runtime.evaluate", expression=expression,
                                           returnByValue=True)
            visit.values = evaluated["result"].get("value")
            shot = await session.call("Page.captureScreenshot", format="png")
            visit.screenshot = base64.b64decode(shot["data"])
            pump.cancel()
    for event in session.events:
        method, params = event["method"], event["params"]
        if method == "Network.requestWillBeSent":
            visit.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            visit.errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            visit.errors.append(str(params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            visit.errors.append(params["entry"]["text"])
    return visit


def visit_page(path: Path, expression: str, width: int = 1280, height: int = 1600) -> PageVisit:
    """Opens the file in a fresh headless Chromium and returns what happened."""
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    # Chromium's helpers (renderer, crash handler) may still write into the profile after the
    # browser itself exited: its whole session is stopped, and what a helper left is no error.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        try:
            port = _devtools_port(browser)
            return asyncio.run(_visit(port, path.resolve().as_uri(), expression, width, height))
        finally:
            _stop_session(browser)


def _stop_session(browser: subprocess.Popen) -> None:
    """SIGTERM to the browser's session, then SIGKILL to any helper that outlived it."""
    try:
        os.killpg(browser.pid, signal.SIGTERM)
        browser.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(browser.pid, signal.SIGKILL)
    browser.wait()


def _devtools_port(browser: subprocess.Popen) -> int:
    """Chromium prints `DevTools listening on ws://127.0.0.1:PORT/...` once it is ready."""
    import selectors
    import time

    deadline = time.monotonic() + START_TIMEOUT_S
    selector = selectors.DefaultSelector()
    selector.register(browser.stderr, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if not selector.select(deadline - time.monotonic()):
            break
        line = browser.stderr.readline()
        if not line:
            break
        found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
        if found:
            return int(found.group(1))
    raise RuntimeError("chromium did not open its DevTools port")
