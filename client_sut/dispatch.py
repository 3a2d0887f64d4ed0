"""The endpoint pool: one pooled keep-alive session per endpoint, least-outstanding balancing,
and a cap on requests in flight per endpoint. Work beyond the caps waits in FIFO order; its wait
counts in its latency, as a real user's would.

Runs entirely on the event loop thread, so plain counters need no locks.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from client_sut.timeouts import Timeouts, Watchdog

Job = Callable[[str, aiohttp.ClientSession], Awaitable[None]]


class _Endpoint:
    __slots__ = ("url", "session", "outstanding")

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session
        self.outstanding = 0


class EndpointPool:
    def __init__(self, urls: Sequence[str], max_concurrency: int, timeouts: Timeouts,
                 ssl_context: ssl.SSLContext | bool = True,
                 headers: dict[str, str] | None = None) -> None:
        if not urls:
            raise ValueError("no endpoints")
        self._urls = list(urls)
        self._max_concurrency = max_concurrency
        self._timeouts = timeouts
        self._ssl = ssl_context
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self.watchdog = Watchdog(timeouts)
        self._watchdog_task: asyncio.Task | None = None
        self._endpoints: list[_Endpoint] = []
        self._backlog: deque[Job] = deque()
        self._tasks: set[asyncio.Task] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def __aenter__(self) -> EndpointPool:
        for url in self._urls:
            connector = aiohttp.TCPConnector(
                limit=self._max_concurrency, limit_per_host=self._max_concurrency,
                ssl=self._ssl, keepalive_timeout=self._timeouts.keepalive, ttl_dns_cache=None,
            )
            session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeouts.client_timeout(),
                # The SSE bytes are read as they come; skip aiohttp's automatic decompression
                # and cookie handling, which a benchmark has no use for.
                auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                headers=self._headers,
            )
            self._endpoints.append(_Endpoint(url, session))
        self._watchdog_task = asyncio.get_running_loop().create_task(self.watchdog.run())
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
        for endpoint in self._endpoints:
            await endpoint.session.close()

    def submit(self, job: Job) -> None:
        self._idle.clear()
        endpoint = self._least_outstanding()
        if endpoint is None:
            self._backlog.append(job)
        else:
            self._start(endpoint, job)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def cancel_all(self) -> None:
        """Cancel the requests in flight and start every waiting job at once, past the caps:
        the jobs' owner is stopping and completes them without sending anything."""
        for task in list(self._tasks):
            task.cancel()
        while self._backlog:
            endpoint = min(self._endpoints, key=lambda e: e.outstanding)
            self._start(endpoint, self._backlog.popleft())

    def _least_outstanding(self) -> _Endpoint | None:
        best = None
        for endpoint in self._endpoints:
            if endpoint.outstanding < self._max_concurrency and (
                    best is None or endpoint.outstanding < best.outstanding):
                best = endpoint
        return best

    def _start(self, endpoint: _Endpoint, job: Job) -> None:
        endpoint.outstanding += 1
        task = asyncio.get_running_loop().create_task(job(endpoint.url, endpoint.session))
        self._tasks.add(task)
        task.add_done_callback(lambda t, e=endpoint: self._finished(t, e))

    def _finished(self, task: asyncio.Task, endpoint: _Endpoint) -> None:
        self._tasks.discard(task)
        endpoint.outstanding -= 1
        if self._backlog:
            chosen = self._least_outstanding()
            if chosen is not None:
                self._start(chosen, self._backlog.popleft())
        if not self._tasks and not self._backlog:
            self._idle.set()
