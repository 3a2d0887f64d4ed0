"""The endpoint pool: keep-alive connections per endpoint, least-outstanding balancing,
and a cap on requests in flight per endpoint. Work beyond the caps waits in FIFO order; its wait
counts in its latency, as a real user's would. An endpoint whose connections keep failing is
taken out of the balance until its health path answers (measure/ejection.py).

Runs entirely on the event loop thread, so plain counters need no locks.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence

from client_sut.measure.ejection import PROBE_EVERY_S, Ejection, Outliers
from client_sut.measure.timeouts import Watchdog
from client_sut.measure.transport import ConnectionPool
from client_sut.records import Answer, HealthCheck, RequestError
from client_sut.request import Timeouts

# Called the moment its endpoint has room, with that endpoint: what it does before it returns
# (the client writes its request) happens then; the coroutine it returns runs as a task, and
# returns how the request failed (None: it did not).
Job = Callable[[str, ConnectionPool], Coroutine[None, None, RequestError | None]]
# Asks an endpoint's health path (blocking: run on a thread).
HealthProbe = Callable[[str], HealthCheck]


class _Endpoint:
    __slots__ = ("url", "connections", "outstanding")

    def __init__(self, url: str, connections: ConnectionPool) -> None:
        self.url = url
        self.connections = connections
        self.outstanding = 0


class EndpointPool:
    def __init__(self, urls: Sequence[str], max_concurrency: int, timeouts: Timeouts,
                 ssl_context: ssl.SSLContext | bool = True,
                 headers: dict[str, str] | None = None, health: HealthProbe | None = None,
                 on_ejection: Callable[[Ejection], None] = lambda ejection: None,
                 worker: int | None = None) -> None:
        """`health`: asks an endpoint's health path; without it nothing is ever ejected.
        `on_ejection`: told of each ejection, and again when it ends."""
        if not urls:
            raise ValueError("no endpoints")
        self._urls = list(urls)
        self._health = health
        self._on_ejection = on_ejection
        self.outliers = Outliers(self._urls, worker=worker)
        self._probes: set[asyncio.Task] = set()
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
        for probe in self._probes:
            probe.cancel()
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
            if endpoint.outstanding < self._max_concurrency and not self.outliers.is_out(
                    endpoint.url) and (
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
        if self._health is not None and not task.cancelled() and task.exception() is None:
            ejection = self.outliers.outcome(endpoint.url, task.result(),
                                             time.perf_counter_ns())
            if ejection is not None:
                self._ejected(ejection)
        self._drain()
        if not self._tasks and not self._backlog:
            self._idle.set()

    def _drain(self) -> None:
        """Starts waiting work while an endpoint in the balance has room."""
        while self._backlog:
            chosen = self._least_outstanding()
            if chosen is None:
                return
            self._start(chosen, self._backlog.popleft())

    # --- ejection (measure/ejection.py) ---------------------------------------------------------

    def _ejected(self, ejection: Ejection) -> None:
        self._on_ejection(ejection)
        probe = asyncio.get_running_loop().create_task(self._probe_until_back(ejection.endpoint))
        self._probes.add(probe)
        probe.add_done_callback(self._probes.discard)

    async def _probe_until_back(self, url: str) -> None:
        while True:
            await asyncio.sleep(PROBE_EVERY_S)
            check = await asyncio.to_thread(self._health, url)
            if check.answer is Answer.ANSWERED:
                self._on_ejection(self.outliers.readmit(url, time.perf_counter_ns(),
                                                        f"its health path answered "
                                                        f"({check.detail})"))
                self._drain()
                return
