"""The streams sharded over worker processes, with one LoadGen in this process.

MLPerf allows one LoadGen with one clock, but one event loop reads only so many tokens a second
(every read costs a system call and some Python). With `--workers N` the streams run in N
worker processes (measure/worker.py), each with its own event loop, connections and share of
`--max-concurrency`; this process keeps LoadGen and decides everything LoadGen is told
(`LoadGenBridge`). An issue goes from LoadGen's thread to this process's loop and on to the
worker with the fewest queries in hand, over a Unix socket; each first token and record come
back the same way. Timestamps stay comparable because every process reads the same system-wide
monotonic clock (perf_counter is CLOCK_MONOTONIC on Linux).

Cores: with a core for this process and one per worker to spare, each is pinned to its own
(`plan_cores`), so no worker's reads wait behind LoadGen or another worker; with fewer, nothing
is pinned and the system shares what there is. The plan is written to results.json.

A worker that dies fails its queries (completed to LoadGen, never left waiting); the others go
on, and new queries go to them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Sequence

from client_sut.errors import UsageError
from client_sut.measure.channel import Channel, open_channel
from client_sut.measure.cores import CorePlan
from client_sut.measure.driver import Batch, failed_record
from client_sut.measure.ejection import EjectionLog
from client_sut.measure.selfcheck import WorkerStats
from client_sut.measure.stream import INTERRUPTED
from client_sut.measure.sut import LoadGenBridge, LoadGenSut
from client_sut.measure.worker import (
    DONE,
    EJECTION,
    END,
    FIRST,
    ISSUE,
    READY,
    SPEC,
    STATS,
    STOP,
    WorkerSpec,
)
from client_sut.records import ErrorKind

# How long the workers may take to complete what they hold after a stop, and to report at the end.
STOP_GRACE_S = 5.0
END_GRACE_S = 10.0


def concurrency_shares(max_concurrency: int, workers: int) -> list[int]:
    """`max_concurrency` split over the workers as evenly as it goes."""
    return [max_concurrency // workers + (i < max_concurrency % workers) for i in range(workers)]


class _Worker:
    """The LoadGen process's handle on one worker process."""

    def __init__(self, index: int, capacity: int, process: subprocess.Popen) -> None:
        self.index = index
        self.capacity = capacity  # queries it may hold: its streams and as many waiting
        self.process = process
        self.channel: Channel | None = None
        self.held: set[int] = set()  # query ids sent and not completed
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.stats: asyncio.Future = asyncio.get_running_loop().create_future()
        self.alive = True


class WorkerSut(LoadGenSut):
    """The streams in worker processes."""

    def __init__(self, bridge: LoadGenBridge, specs: Sequence[WorkerSpec], plan: CorePlan,
                 ejections: EjectionLog) -> None:
        super().__init__(asyncio.get_running_loop(), bridge, ejections)
        self.core_plan = plan
        self.worker_stats: list[WorkerStats] = []
        self._specs = specs
        self._workers: list[_Worker] = []
        self._backlog: deque[tuple[int, int, int]] = deque()  # (query id, index, issue time)
        self.stopping = False
        self._returned = asyncio.Event()  # after a stop: no live worker holds a query

    async def start(self) -> dict:
        """Starts every worker and waits until each has warmed its connections up; returns the
        warm-up summed over them."""
        if self.core_plan.pinned:
            os.sched_setaffinity(0, self.core_plan.loadgen)
        for spec in self._specs:
            parent_end, child_end = socket.socketpair()
            with child_end:
                process = subprocess.Popen(
                    [sys.executable, "-m", "client_sut.measure.worker", str(child_end.fileno())],
                    pass_fds=(child_end.fileno(),))
            worker = _Worker(spec.index, 2 * spec.max_concurrency, process)
            worker.channel = await open_channel(
                parent_end, lambda message, w=worker: self._on_message(w, message),
                lambda exc, w=worker: self._on_closed(w))
            worker.channel.send((SPEC, spec))
            self._workers.append(worker)
        try:
            warmups = await asyncio.gather(*(worker.ready for worker in self._workers))
        except WorkerExited as exc:  # nothing measured yet: the run cannot go on as asked
            raise UsageError(f"{exc} before it was ready (its error, if any, is above); run "
                             f"with fewer --workers or none") from None
        return _sum_warmups(warmups)

    def _hand_over(self, batch: Batch, issue_ns: int) -> None:
        self._backlog.extend((query_id, index, issue_ns) for query_id, index in batch)
        self._hand_out()

    def _hand_out(self) -> None:
        """Each waiting query to the live worker with the fewest in hand, while any has room;
        one message per worker for all it gets."""
        if self.stopping or not any(w.alive for w in self._workers):
            self._fail_backlog()
            return
        given: dict[_Worker, dict[int, Batch]] = {}
        while self._backlog:
            worker = min((w for w in self._workers if w.alive), key=lambda w: len(w.held))
            if len(worker.held) >= worker.capacity:
                break
            query_id, index, issue_ns = self._backlog.popleft()
            worker.held.add(query_id)
            given.setdefault(worker, {}).setdefault(issue_ns, []).append((query_id, index))
        for worker, batches in given.items():
            for issue_ns, batch in batches.items():
                worker.channel.send((ISSUE, batch, issue_ns))

    def _fail_backlog(self) -> None:
        why = INTERRUPTED if self.stopping else "every client worker process has exited"
        kind = ErrorKind.CANCELLED if self.stopping else ErrorKind.CLIENT
        while self._backlog:
            query_id, index, issue_ns = self._backlog.popleft()
            self.bridge.complete(query_id, failed_record(index, "", issue_ns, kind, why))

    def _on_message(self, worker: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == FIRST:
            self.bridge.first_token(message[1], message[2], message[3])
        elif kind == DONE:
            worker.held.discard(message[1])
            self.bridge.complete(message[1], message[2])
            if self._backlog:
                self._hand_out()
            self._note_returned()
        elif kind == EJECTION:
            self.ejections(message[1])
        elif kind == READY:
            worker.ready.set_result(message[1])
        elif kind == STATS:
            worker.stats.set_result(message[1])

    def _on_closed(self, worker: _Worker) -> None:
        """A worker gone: whatever it held is failed, the rest goes to the others."""
        worker.alive = False
        for future in (worker.ready, worker.stats):
            if not future.done():
                future.set_exception(WorkerExited(worker.index, worker.process.poll()))
        for query_id, index, issue_ns in self.bridge.open_queries():
            if query_id in worker.held:
                self.bridge.complete(query_id, failed_record(
                    index, "", issue_ns, ErrorKind.CLIENT,
                    f"client worker process {worker.index} exited"))
        worker.held.clear()
        self._hand_out()
        self._note_returned()

    def _note_returned(self) -> None:
        if self.stopping and not any(w.held for w in self._workers if w.alive):
            self._returned.set()

    def stop(self) -> asyncio.Task:
        """Interrupted: the workers complete what they hold, unsent; nothing more is sent."""
        self.stopping = True
        self._fail_backlog()
        for worker in self._workers:
            if worker.alive:
                worker.channel.send((STOP,))
        self._note_returned()
        return self._loop.create_task(self._complete_leftovers())

    async def _complete_leftovers(self) -> None:
        """Whatever a worker has not completed within the grace is completed here."""
        try:
            await asyncio.wait_for(self._returned.wait(), STOP_GRACE_S)
        except asyncio.TimeoutError:
            pass
        for query_id, index, issue_ns in self.bridge.open_queries():
            self.bridge.complete(query_id, failed_record(index, "", issue_ns,
                                                         ErrorKind.CANCELLED, INTERRUPTED))

    async def close(self) -> list[WorkerStats]:
        """Ends every worker and returns what each measured of itself (a worker that does not
        answer in time is killed and has no figures)."""
        for worker in self._workers:
            if worker.alive:
                worker.channel.send((END,))
        done, _ = await asyncio.wait([w.stats for w in self._workers], timeout=END_GRACE_S)
        self.worker_stats = [w.stats.result() for w in self._workers
                             if w.stats in done and w.stats.exception() is None]
        for worker in self._workers:
            worker.channel.close()
            await asyncio.to_thread(_reap, worker.process)
        if self.core_plan.pinned:  # scoring and what follows may use every core again
            os.sched_setaffinity(0, self.core_plan.available)
        return self.worker_stats


class WorkerExited(Exception):
    def __init__(self, index: int, returncode: int | None) -> None:
        super().__init__(f"client worker process {index} exited"
                         + (f" with status {returncode}" if returncode is not None else ""))


def _reap(process: subprocess.Popen) -> None:
    try:
        process.wait(END_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _sum_warmups(warmups: Sequence[dict]) -> dict:
    total = dict(warmups[0])
    for warmup in warmups[1:]:
        for key in ("requests", "errors", "output_tokens"):
            if key in warmup:
                total[key] = total.get(key, 0) + warmup[key]
        total["first_error"] = total.get("first_error") or warmup.get("first_error")
        total["seconds"] = max(total.get("seconds", 0), warmup.get("seconds", 0))
    return total

