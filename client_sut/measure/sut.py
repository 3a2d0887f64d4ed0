"""The LoadGen bridge: LoadGen's SUT callbacks on one side, the streamed requests on the other.

LoadGen calls `issue_queries` on its own thread; the samples are handed to the event loop in one
thread-safe call and the LoadGen thread returns at once. On the loop, each sample becomes one
streamed request (measure/driver.py). At its first token-bearing event the bridge calls
`FirstTokenComplete` (not in Offline), and at the end `QuerySamplesComplete` with every output
token id as int32 and the server's token count (`LoadGenBridge`).

The two halves meet through the driver's `Reporter`, so the streams can run on this process's loop
(`ClientSut`) or in worker processes that send their first tokens and records back
(measure/workers.py): what LoadGen is told is decided here, in one place, either way.

No sample is ever left uncompleted, and none is completed or given a first token twice: a
request that fails, times out or is cancelled is still completed to LoadGen (with what it
received), after a first token report if it had none, since LoadGen's token statistics break on
a sample completed without one.
"""

from __future__ import annotations

import asyncio
import os
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType

import mlperf_loadgen as lg

from client_sut.measure.cores import plan_cores
from client_sut.measure.dispatch import EndpointPool
from client_sut.measure.driver import Batch, StreamDriver
from client_sut.measure.ejection import EjectionLog
from client_sut.measure.record_log import RecordLog
from client_sut.records import RequestError, RequestRecord, TokenIdSource
from client_sut.request import Api

Retokenize = Callable[[str], list[int]]
# A stream's pieces (records.RequestRecord.pieces) -> every id it generated, or None
Recover = Callable[[tuple], list[int] | None]


class LoadGenBridge:
    """What LoadGen is told, and the records of what it was told. Runs on the LoadGen
    process's event loop thread only."""

    def __init__(self, *, report_first_token: bool, retokenize: Retokenize,
                 redact: Callable[[str], str], log: RecordLog,
                 recover: Recover | None = None) -> None:
        self._report_first_token = report_first_token
        self._retokenize = retokenize
        self._recover = recover
        self._redact = redact
        self.log = log  # where each record goes once LoadGen has been told
        self.issued = 0
        self.completed = 0
        self.errors = 0
        self._open: dict[int, tuple[int, int]] = {}  # query id -> (sample index, issue time)
        self._first_reported: dict[int, int] = {}  # open query id -> when its token was reported

    def opened(self, batch: Batch, issue_ns: int) -> None:
        self.issued += len(batch)
        for query_id, index in batch:
            self._open[query_id] = (index, issue_ns)

    def open_queries(self) -> list[tuple[int, int, int]]:
        """(query id, sample index, issue time) of every query not completed yet."""
        return [(query_id, index, issue_ns)
                for query_id, (index, issue_ns) in self._open.items()]

    def first_token_waits(self) -> list[int]:
        """LoadGen's issue time of every open query that has no first token yet."""
        return [issue_ns for query_id, (_, issue_ns) in self._open.items()
                if query_id not in self._first_reported]

    def first_token(self, query_id: int, ids: list[int] | None, text: str) -> int | None:
        if (not self._report_first_token or query_id not in self._open
                or query_id in self._first_reported):
            return None
        first = array("i", ids[:1] if ids else self._ids_of(text)[:1])
        reported_ns = self._first_reported[query_id] = time.perf_counter_ns()
        _first_token_complete(query_id, first)
        return reported_ns

    def complete(self, query_id: int, record: RequestRecord) -> None:
        if self._open.pop(query_id, None) is None:
            return  # completed already, as swallowed, while its task waited to run: once only
        if record.error is not None:  # server text may echo the API key
            record = replace(record, error=RequestError(record.error.kind,
                                                        self._redact(record.error.message)))
        if record.pieces and self._recover is not None:
            record = self._recovered(record)
        if record.token_id_source.retokenized:
            record = replace(record, token_ids=array("i", self._ids_of(record.text)))
        ids = record.token_ids
        reported_ns = self._first_reported.pop(query_id, None)
        if self._report_first_token:
            if reported_ns is None:
                # The stream reported the first token at its first token-bearing event, if it
                # had one; a sample completed without one would break LoadGen's statistics.
                reported_ns = time.perf_counter_ns()
                _first_token_complete(query_id, ids[:1])
            if record.first_reported_ns != reported_ns:  # a worker cannot know when
                record = replace(record, first_reported_ns=reported_ns)
        address, count = ids.buffer_info()
        lg.QuerySamplesComplete([lg.QuerySampleResponse(
            query_id, address, count * ids.itemsize, record.output_tokens)])
        self.log.add(record)
        self.completed += 1
        self.errors += not record.ok


    def _ids_of(self, text: str) -> list[int]:
        """The text's ids by the reference tokenizer; none where it fails (a tokenizer first
        loaded mid-run that cannot load): the sample is still completed, LoadGen never waits."""
        try:
            return self._retokenize(text)
        except Exception:
            return []

    def _recovered(self, record: RequestRecord) -> RequestRecord:
        """The ids it left out, recovered exactly, where they can be: else the record as it is
        (its whole text is tokenized then)."""
        ids = self._recover(record.pieces)
        if ids is None or len(ids) != record.server_completion_tokens:
            return replace(record, pieces=())
        return replace(record, token_ids=array("i", ids), pieces=(), text="",
                       token_id_source=TokenIdSource.RECOVERED)


class LoadGenSut:
    """LoadGen's SUT callbacks: every issue is handed to the event loop at once, opened in the
    bridge and handed on to the streams (`_hand_over`, on the loop)."""

    worker_stats: Sequence = ()  # what worker processes measured of themselves (none here)
    # Per endpoint, whether it closed each connection after a response, so that every request
    # took a new one (known where the streams ran on this process's loop).
    connection_per_request: Mapping[str, bool] = MappingProxyType({})

    def __init__(self, loop: asyncio.AbstractEventLoop, bridge: LoadGenBridge,
                 ejections: EjectionLog) -> None:
        self._loop = loop
        self.bridge = bridge
        self.ejections = ejections  # endpoints taken out of the balance, and put back

    # --- LoadGen's thread ---------------------------------------------------------------------

    def issue_queries(self, query_samples) -> None:
        issue_ns = time.perf_counter_ns()
        batch = [(sample.id, sample.index) for sample in query_samples]
        call_on_loop(self._loop, self._submit, batch, issue_ns)

    def flush_queries(self) -> None:
        """Nothing is held back for batching, so there is nothing to flush."""

    # --- the event loop -----------------------------------------------------------------------

    def _submit(self, batch: Batch, issue_ns: int) -> None:
        self.bridge.opened(batch, issue_ns)
        self._hand_over(batch, issue_ns)

    def _hand_over(self, batch: Batch, issue_ns: int) -> None:
        raise NotImplementedError

    def stop(self) -> asyncio.Task:
        """Interrupted: nothing more is sent, and every open sample is completed (the task
        returned ends once they are)."""
        raise NotImplementedError


class ClientSut(LoadGenSut):
    """The streams on the LoadGen process's own event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: EndpointPool, api: Api,
                 bodies: Sequence[bytes], bridge: LoadGenBridge, ejections: EjectionLog) -> None:
        super().__init__(loop, bridge, ejections)
        self._driver = StreamDriver(loop, pool, api, bodies, bridge)
        self.core_plan = plan_cores(0, os.sched_getaffinity(0))

    def stop(self) -> asyncio.Task:
        return self._driver.stop()

    def _hand_over(self, batch: Batch, issue_ns: int) -> None:
        self._driver.submit(batch, issue_ns)


def call_on_loop(loop: asyncio.AbstractEventLoop, callback, *args) -> None:
    """From LoadGen's thread. The loop may be closed: an interrupted Server run whose LoadGen
    keeps its schedule while the results are written and the process exits. An exception must
    not escape into LoadGen's thread."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass


def _first_token_complete(query_id: int, first: array) -> None:
    address, count = first.buffer_info()
    lg.FirstTokenComplete([lg.QuerySampleResponse(query_id, address, count * first.itemsize)])
