"""The endpoint pool: keep-alive connections per endpoint, least-outstanding balancing,
and a cap on requests in flight per endpoint. Work beyond the caps waits in FIFO order; its wait
counts in its latency, as a real user's would.

Runs entirely on the event loop thread, so plain counters need no locks.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Coroutine, Sequence

from client_sut.measure.timeouts import Watchdog
from client_sut.measure.transport import ConnectionPool
from client_sut.request import Timeouts

# Called the moment its endpoint has room, with that endpoint: what it does before it returns
# (the client writes its request) happens then; the coroutine it returns runs as a task.
Job = Callable[[str, ConnectionPool], Coroutine[None, None, None]]


class _Endpoint:
    __slots__ = ("url", "connections", "outstanding")

    def __init__(self, url: str, connections: ConnectionPool) -> None:
        self.url = url
        self.connections = connections
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
        self._headers = headers or {}
        self.watchdog = Watchdog(timeouts)
        self._watchdog_task: asyncio.Task | None = None
        self._endpoints: list[_Endpoint] = []
        self._next_first = 0  # where the search for the least loaded endpoint starts
        self._backlog: deque[Job] = deque()
        self._tasks: set[asyncio.Task] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def __aenter__(self) -> EndpointPool:
        for url in self._urls:
            connections = ConnectionPool(url, ssl_verify=self._ssl,
                                         keepalive_s=self._timeouts.keepalive,
                                         connect_timeout_s=self._timeouts.connect,
                                         headers=self._headers)
            self._endpoints.append(_Endpoint(url, connections))
        self._watchdog_task = asyncio.get_running_loop().create_task(self.watchdog.run())
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
        for endpoint in self._endpoints:
            endpoint.connections.close()

    def connection_pools(self) -> list[tuple[str, ConnectionPool]]:
        """Each endpoint's URL and keep-alive connections, for work outside the caps (warm-up)."""
        return [(endpoint.url, endpoint.connections) for endpoint in self._endpoints]

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
        """Ties go round-robin: at a load where every endpoint is often idle, "the first of the
        least loaded" would send nearly every request to the first endpoint."""
        best = None
        count = len(self._endpoints)
        for step in range(count):
            endpoint = self._endpoints[(self._next_first + step) % count]
            if endpoint.outstanding < self._max_concurrency and (
                    best is None or endpoint.outstanding < best.outstanding):
                best = endpoint
        if best is not None:
            self._next_first = (self._endpoints.index(best) + 1) % count
        return best

    def _start(self, endpoint: _Endpoint, job: Job) -> None:
        endpoint.outstanding += 1
        task = asyncio.get_running_loop().create_task(job(endpoint.url, endpoint.connections))
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
