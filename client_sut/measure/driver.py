"""Each issued sample becomes one streamed request: the loop side of the client.

`StreamDriver` sends each sample's request through the endpoint pool and hands the request's
first token and, at its end, its record to a `Reporter`. It knows nothing of LoadGen: in the
LoadGen process the reporter is the LoadGen bridge (measure/sut.py); in a worker process it is
the channel back to that bridge (measure/workers.py).
"""

from __future__ import annotations

import asyncio
import functools
import time
from array import array
from collections.abc import Coroutine, Sequence
from typing import Protocol

from client_sut.measure.dispatch import EndpointPool
from client_sut.measure.stream import (
    INTERRUPTED,
    InFlight,
    finish_request,
    send_request,
)
from client_sut.measure.transport import ConnectionPool
from client_sut.records import ErrorKind, RequestError, RequestRecord, TokenIdSource
from client_sut.request import Api

# LoadGen's (query id, sample index) pairs of one issue
Batch = list[tuple[int, int]]


class Reporter(Protocol):
    """Where a request's first token and its record go."""

    def first_token(self, query_id: int, ids: list[int] | None, text: str) -> int | None:
        """Returns when the token was reported to LoadGen (perf_counter_ns), if it was."""

    def complete(self, query_id: int, record: RequestRecord) -> None: ...


class StreamDriver:
    """Each issued sample one streamed request through the endpoint pool, its first token and
    its record handed to the reporter. Runs on one event loop, in the LoadGen process or in a
    worker process."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: EndpointPool, api: Api,
                 bodies: Sequence[bytes], reporter: Reporter) -> None:
        self._loop = loop
        self._pool = pool
        self._api = api
        self._bodies = bodies
        self._reporter = reporter
        self.stopping = False  # interrupted: complete everything at once, send nothing more
        self._open: dict[int, tuple[int, int]] = {}  # query id -> (sample index, issue time)
        self._written: dict[int, InFlight] = {}  # query id -> its request, until its task ends

    @property
    def open_count(self) -> int:
        return len(self._open)

    def submit(self, batch: Batch, issue_ns: int) -> None:
        for query_id, index in batch:
            self._open[query_id] = (index, issue_ns)
            self._pool.submit(functools.partial(self._serve, query_id, index, issue_ns))

    def stop(self) -> asyncio.Task:
        """Interrupted: no more requests; everything in flight or waiting completes now (the
        task returned has completed what no request's own task did)."""
        self.stopping = True
        self._pool.cancel_all()
        return self._loop.create_task(self._complete_swallowed())

    async def _complete_swallowed(self) -> None:
        """A task cancelled before its first step never runs its body, though its request may
        have been written already: once every task has ended, stop those requests and complete
        whatever is still open, so LoadGen is never left waiting."""
        await self._pool.wait_idle()
        for query_id, (index, issue_ns) in list(self._open.items()):
            inflight = self._written.pop(query_id, None)
            if inflight is not None:
                inflight.drop()
                self._pool.watchdog.forget(inflight.watched)
            self._complete(query_id, failed_record(index, "", issue_ns, ErrorKind.CANCELLED,
                                                   INTERRUPTED))

    def _serve(self, query_id: int, index: int, issue_ns: int, endpoint: str,
               connections: ConnectionPool) -> Coroutine[None, None, RequestError | None]:
        """Sends the request now (see `send_request`); the coroutine it returns, run as a task,
        waits for the answer, completes the sample and returns how it failed, if it did."""
        if self.stopping:  # issued after the interrupt: completed without being sent
            return self._fail(query_id, index, endpoint, issue_ns, ErrorKind.CANCELLED,
                              INTERRUPTED)
        try:
            inflight = send_request(
                connections, self._api, self._bodies[index],
                on_first_token=functools.partial(self._reporter.first_token, query_id),
                watchdog=self._pool.watchdog)
        except Exception as exc:  # a bug of ours must not leave LoadGen waiting
            return self._fail(query_id, index, endpoint, issue_ns, ErrorKind.CLIENT,
                              f"{type(exc).__name__}: {exc}")
        self._written[query_id] = inflight
        return self._finish(query_id, index, issue_ns, endpoint, connections, inflight)

    async def _finish(self, query_id: int, index: int, issue_ns: int, endpoint: str,
                      connections: ConnectionPool, inflight: InFlight) -> RequestError | None:
        try:
            record = await finish_request(inflight, connections, endpoint, sample_index=index,
                                          issue_ns=issue_ns, watchdog=self._pool.watchdog)
        except Exception as exc:  # a bug of ours must not leave LoadGen waiting
            record = failed_record(index, endpoint, issue_ns, ErrorKind.CLIENT,
                                   f"{type(exc).__name__}: {exc}")
        self._written.pop(query_id, None)  # gone if the interrupt completed it already
        self._complete(query_id, record)
        return record.error

    async def _fail(self, query_id: int, index: int, endpoint: str, issue_ns: int,
                    kind: ErrorKind, message: str) -> RequestError:
        record = failed_record(index, endpoint, issue_ns, kind, message)
        self._complete(query_id, record)
        return record.error

    def _complete(self, query_id: int, record: RequestRecord) -> None:
        if self._open.pop(query_id, None) is not None:
            self._reporter.complete(query_id, record)


def failed_record(index: int, endpoint: str, issue_ns: int, kind: ErrorKind,
                  message: str) -> RequestRecord:
    now = time.perf_counter_ns()
    return RequestRecord(
        sample_index=index, endpoint=endpoint, issue_ns=issue_ns, send_ns=now,
        first_byte_ns=None, end_ns=now, event_ns=array("q"), event_tokens=array("i"),
        token_ids=array("i"), token_id_source=TokenIdSource.NONE,
        server_completion_tokens=None, finish_reason=None, http_status=None,
        error=RequestError(kind, message),
    )
