"""The LoadGen bridge: LoadGen's SUT callbacks on one side, the event loop on the other.

LoadGen calls `issue_queries` on its own thread; the samples are handed to the event loop in one
thread-safe call and the LoadGen thread returns at once. On the loop, each sample becomes one
streamed request. At its first token-bearing event the bridge calls `FirstTokenComplete` (not in
Offline), and at the end `QuerySamplesComplete` with every output token id as int32 and the
server's token count.

No sample is ever left uncompleted, and none is completed or given a first token twice: a
request that fails, times out or is cancelled is still completed to LoadGen (with what it
received), after a first token report if it had none, since LoadGen's token statistics break on
a sample completed without one.
"""

from __future__ import annotations

import asyncio
import functools
import time
from array import array
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace

import mlperf_loadgen as lg

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

Retokenize = Callable[[str], list[int]]


class ClientSut:
    def __init__(self, loop: asyncio.AbstractEventLoop, pool: EndpointPool, api: Api,
                 bodies: Sequence[bytes], *, report_first_token: bool, retokenize: Retokenize,
                 redact: Callable[[str], str]) -> None:
        self._loop = loop
        self._pool = pool
        self._api = api
        self._bodies = bodies
        self._report_first_token = report_first_token
        self._retokenize = retokenize
        self._redact = redact
        self.records: list[RequestRecord] = []
        self.issued = 0
        self.completed = 0
        self.errors = 0
        self.stopping = False  # interrupted: complete everything at once, send nothing more
        self._open: dict[int, tuple[int, int]] = {}  # query id -> (sample index, issue time)
        self._written: dict[int, InFlight] = {}  # query id -> its request, until its task ends
        self._first_reported: set[int] = set()  # open queries LoadGen has a first token for

    def first_token_waits(self) -> list[int]:
        """LoadGen's issue time of every open query that has no first token yet."""
        return [issue_ns for query_id, (_, issue_ns) in self._open.items()
                if query_id not in self._first_reported]

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
            self._complete(query_id, _failed_record(index, "", issue_ns, ErrorKind.CANCELLED,
                                                    INTERRUPTED))

    # --- LoadGen's thread ---------------------------------------------------------------------

    def issue_queries(self, query_samples) -> None:
        issue_ns = time.perf_counter_ns()
        batch = [(sample.id, sample.index) for sample in query_samples]
        try:
            self._loop.call_soon_threadsafe(self._submit, batch, issue_ns)
        except RuntimeError:
            # The loop is closed: an interrupted Server run whose LoadGen keeps its schedule
            # while the results are written and the process exits. An exception must not
            # escape into LoadGen's thread.
            pass

    def flush_queries(self) -> None:
        """Nothing is held back for batching, so there is nothing to flush."""

    # --- the event loop -----------------------------------------------------------------------

    def _submit(self, batch: list[tuple[int, int]], issue_ns: int) -> None:
        self.issued += len(batch)
        for query_id, index in batch:
            self._open[query_id] = (index, issue_ns)
            self._pool.submit(functools.partial(self._serve, query_id, index, issue_ns))

    def _serve(self, query_id: int, index: int, issue_ns: int, endpoint: str,
               connections: ConnectionPool) -> Coroutine[None, None, None]:
        """Sends the request now (see `send_request`); the coroutine it returns, run as a task,
        waits for the answer and completes the sample."""
        if self.stopping:  # issued after the interrupt: completed without being sent
            return self._fail(query_id, index, endpoint, issue_ns, ErrorKind.CANCELLED,
                              INTERRUPTED)
        try:
            inflight = send_request(connections, self._api, self._bodies[index],
                                    on_first_token=functools.partial(self._first_token, query_id),
                                    watchdog=self._pool.watchdog)
        except Exception as exc:  # a bug of ours must not leave LoadGen waiting
            return self._fail(query_id, index, endpoint, issue_ns, ErrorKind.CLIENT,
                              f"{type(exc).__name__}: {exc}")
        self._written[query_id] = inflight
        return self._finish(query_id, index, issue_ns, endpoint, connections, inflight)

    async def _finish(self, query_id: int, index: int, issue_ns: int, endpoint: str,
                      connections: ConnectionPool, inflight: InFlight) -> None:
        try:
            record = await finish_request(inflight, connections, endpoint, sample_index=index,
                                          issue_ns=issue_ns, watchdog=self._pool.watchdog)
        except Exception as exc:  # a bug of ours must not leave LoadGen waiting
            record = _failed_record(index, endpoint, issue_ns, ErrorKind.CLIENT,
                                    f"{type(exc).__name__}: {exc}")
        self._written.pop(query_id, None)  # gone if the interrupt completed it already
        self._complete(query_id, record)

    async def _fail(self, query_id: int, index: int, endpoint: str, issue_ns: int,
                    kind: ErrorKind, message: str) -> None:
        self._complete(query_id, _failed_record(index, endpoint, issue_ns, kind, message))

    def _first_token(self, query_id: int, ids: list[int] | None, text: str) -> int | None:
        if not self._report_first_token or query_id not in self._open:
            return None
        self._first_reported.add(query_id)
        first = array("i", ids[:1] if ids else self._retokenize(text)[:1])
        reported_ns = time.perf_counter_ns()
        _first_token_complete(query_id, first)
        return reported_ns

    def _complete(self, query_id: int, record: RequestRecord) -> None:
        if self._open.pop(query_id, None) is None:
            return  # completed already, as swallowed, while its task waited to run: once only
        if record.error is not None:  # server text may echo the API key
            record = replace(record, error=RequestError(record.error.kind,
                                                        self._redact(record.error.message)))
        if record.token_id_source is TokenIdSource.RETOKENIZED:
            record = replace(record, token_ids=array("i", self._retokenize(record.text)))
        ids = record.token_ids
        # The stream reported the first token at its first token-bearing event, if it had one;
        # a sample completed without one would break LoadGen's token statistics.
        if self._report_first_token and query_id not in self._first_reported:
            record = replace(record, first_reported_ns=time.perf_counter_ns())
            _first_token_complete(query_id, ids[:1])
        self._first_reported.discard(query_id)
        address, count = ids.buffer_info()
        lg.QuerySamplesComplete([lg.QuerySampleResponse(
            query_id, address, count * ids.itemsize, record.output_tokens)])
        self.records.append(record)
        self.completed += 1
        self.errors += not record.ok


def _first_token_complete(query_id: int, first: array) -> None:
    address, count = first.buffer_info()
    lg.FirstTokenComplete([lg.QuerySampleResponse(query_id, address, count * first.itemsize)])


def _failed_record(index: int, endpoint: str, issue_ns: int, kind: ErrorKind,
                   message: str) -> RequestRecord:
    now = time.perf_counter_ns()
    return RequestRecord(
        sample_index=index, endpoint=endpoint, issue_ns=issue_ns, send_ns=now,
        first_byte_ns=None, end_ns=now, event_ns=array("q"), event_tokens=array("i"),
        token_ids=array("i"), token_id_source=TokenIdSource.NONE,
        server_completion_tokens=None, finish_reason=None, http_status=None,
        error=RequestError(kind, message),
    )
