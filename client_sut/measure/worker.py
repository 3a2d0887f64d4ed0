"""One worker process of the client: its own event loop, connections and share of the streams.

Started by the LoadGen process (measure/workers.py) as `python -m client_sut.measure.worker FD`,
with one end of a Unix socket pair as FD. The first message is its `WorkerSpec`; it pins itself
to its cores, opens its connection pools, warms its own connections up, and says it is ready.
Then every issue it receives becomes a streamed request at once (`StreamDriver`), and each
request's first token and record go back the moment they exist. It never talks to LoadGen: the
LoadGen process decides what LoadGen is told. At the end it sends what it measured of itself
(loop lag, CPU) and exits; if the LoadGen process goes away, it stops its requests and exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass

from client_sut.eventloop import run_event_loop
from client_sut.measure.channel import Channel, open_channel
from client_sut.measure.dispatch import EndpointPool
from client_sut.measure.driver import StreamDriver
from client_sut.measure.health import health_probe
from client_sut.measure.heap import HeapFreezer
from client_sut.measure.resources import raise_open_files
from client_sut.measure.selfcheck import CpuSample, LoopLagProbe, WorkerStats
from client_sut.measure.warmup import warm_up
from client_sut.records import RequestRecord
from client_sut.request import Api, Timeouts
from client_sut.security import Credentials

# Messages, LoadGen process -> worker
SPEC, ISSUE, STOP, END = "spec", "issue", "stop", "end"
# worker -> LoadGen process
READY, FIRST, DONE, STATS, EJECTION = "ready", "first", "done", "stats", "ejection"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    endpoints: tuple[str, ...]
    max_concurrency: int  # this worker's share, per endpoint
    timeouts: Timeouts
    credentials: Credentials
    api: Api
    bodies: tuple[bytes, ...]
    warmup_bodies: tuple[bytes, ...]
    cores: tuple[int, ...]  # empty: not pinned
    health_paths: tuple[tuple[str, str | None], ...] = ()  # per endpoint, where its kind has it


class _ChannelReporter:
    """The driver's reporter in a worker: everything goes back to the LoadGen process."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self.streamed_tokens = 0

    def first_token(self, query_id: int, ids: list[int] | None, text: str) -> None:
        # Only what LoadGen is told: the first id, or the text to tokenize when there is none.
        self._channel.send((FIRST, query_id, ids[:1] if ids else None, "" if ids else text))

    def complete(self, query_id: int, record: RequestRecord) -> None:
        self.streamed_tokens += record.streamed_tokens
        self._channel.send((DONE, query_id, record))


class _Worker:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.spec: asyncio.Future[WorkerSpec] = self.loop.create_future()
        self.ended = asyncio.Event()
        self.driver: StreamDriver | None = None
        self.stopped: asyncio.Task | None = None  # completes what the stop left open
        self.channel: Channel | None = None

    def on_message(self, message: tuple) -> None:
        kind = message[0]
        if kind == ISSUE:
            self.driver.submit(message[1], message[2])
        elif kind == SPEC:
            self.spec.set_result(message[1])
        elif kind == STOP and self.driver is not None:
            self._stop()
        elif kind == END:
            self.ended.set()

    def on_closed(self, _exc: Exception | None) -> None:
        """The LoadGen process is gone (or closed its end): nobody waits for anything more."""
        if not self.spec.done():
            self.spec.cancel()
        if self.driver is not None:
            self._stop()
        self.ended.set()

    def _stop(self) -> None:
        if self.stopped is None:
            self.stopped = self.driver.stop()

    async def serve(self, sock: socket.socket) -> None:
        self.channel = await open_channel(sock, self.on_message, self.on_closed)
        try:
            spec = await self.spec
        except asyncio.CancelledError:
            return
        if spec.cores:
            os.sched_setaffinity(0, spec.cores)
        credentials = spec.credentials
        async with EndpointPool(spec.endpoints, spec.max_concurrency, spec.timeouts,
                                ssl_context=credentials.ssl_context(),
                                headers=credentials.headers,
                                health=health_probe(credentials, dict(spec.health_paths)),
                                on_ejection=lambda e: self.channel.send((EJECTION, e)),
                                worker=spec.index) as pool:
            warmup = {"requests": 0}
            if spec.warmup_bodies:
                warmup = await warm_up(pool, spec.api, list(spec.warmup_bodies),
                                       credentials.redact)
            reporter = _ChannelReporter(self.channel)
            self.driver = StreamDriver(self.loop, pool, spec.api, spec.bodies, reporter)
            freezer = HeapFreezer(self.loop)
            probe = LoopLagProbe(self.loop)
            start = CpuSample.now()
            probe.start()
            self.channel.send((READY, warmup))
            await self.ended.wait()
            if self.stopped is not None:
                await self.stopped
            end = CpuSample.now()
            probe.stop()
            freezer.cancel()
            self.channel.send((STATS, WorkerStats(spec.index, spec.cores, probe.lags, start,
                                                  end, reporter.streamed_tokens)))
        self.channel.close()
        await self.channel.wait_closed()


async def _serve(sock: socket.socket) -> None:
    await _Worker().serve(sock)


def main() -> None:
    # A Ctrl-C reaches the whole process group: the LoadGen process decides how its workers
    # stop (everything they hold completed, then their figures), so they do not stop on it.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise_open_files()  # its streams' connections (the LoadGen process checked they fit)
    run_event_loop(_serve(socket.socket(fileno=int(sys.argv[1]))))


if __name__ == "__main__":
    main()
