"""The client's Python work per read, at one event per read, without sockets or an emitter.

Against a busy vLLM a read carries one event, so what the client does per read is what it pays
per token. This feeds the real transport (`Connection.data_received`, httptools) and stream
(`StreamAccumulator`) byte for byte what the emitter writes in its engine-step mode: 256
connections, 128 events each (the last with its finish reason, then usage and [DONE]),
round-robin as an engine step writes them, and then reads each stream's stored events as
`finish_request` does. It prints the CPU (thread time, best of the repeats, so other processes
count little) per read of the whole path and of the transport with a sink that does nothing: the
difference is the stream's storing, reading and record keeping. The kernel's part of a read
(recv, epoll, wake-ups) is not in these figures; `bench_capacity.py` measures everything
together.

    python bench/bench_read_path.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client_sut.measure.stream import StreamAccumulator  # noqa: E402
from client_sut.measure.timeouts import Watched  # noqa: E402
from client_sut.measure.transport import Connection  # noqa: E402
from client_sut.servers.emitter import (  # noqa: E402
    DONE_EVENT,
    LAST_CHUNK,
    STREAM_HEAD,
    _chunked,
    _event_head,
    _middle_event_template,
    _token_event,
    _usage_event,
    run_event_loop,
)

STREAMS, EVENTS = 256, 128
MIDDLE_EVENTS = EVENTS - 2  # neither the first nor the last


class _Pool:
    """What a Connection asks of its pool while one exchange runs."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.closes_after_response = False

    def release(self, connection: Connection) -> None:
        pass

    def forget(self, connection: Connection) -> None:
        pass


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def abort(self) -> None:  # a sink's error ends the exchange: the figures would be wrong
        raise RuntimeError("a read was refused: the bench's bytes are not what the client takes")


class _NullSink:
    def on_headers(self, now_ns: int, status: int, content_type: str) -> None:
        pass

    def on_body(self, now_ns: int, data: bytes) -> None:
        pass

    def read_stored(self) -> int:
        return 0


def _reads() -> tuple[bytes, list[bytes]]:
    """The first read (headers and first token) and each later one, as the emitter frames them."""
    head = _event_head("completions", "cmpl-emitter-1", "emitter")
    first = STREAM_HEAD + _chunked(_token_event(head, "completions", " t5", [5], None, b"[1]"))
    middle = _middle_event_template(head, "completions")
    reads = [_chunked(middle % (b" t%d" % i, b"%d" % i)) for i in range(MIDDLE_EVENTS)]
    last = _token_event(head, "completions", " t9", [9], "length")
    tail = _usage_event("cmpl-emitter-1", "emitter", 1, EVENTS) + DONE_EVENT
    return first, [*reads, _chunked(last), _chunked(tail) + LAST_CHUNK]


def _per_read_ns(make_sink, first: bytes, reads: list[bytes]) -> tuple[float, list[int]]:
    """CPU per read, and how many reads each stream read in bulk."""
    pool = _Pool()
    receivers, sinks = [], []
    for _ in range(STREAMS):
        connection = Connection(pool)
        connection.connection_made(_Transport())
        sinks.append(make_sink())
        connection.exchange(b"", sinks[-1], 0)
        connection.data_received(first)
        receivers.append(connection.data_received)
    started = time.thread_time_ns()
    for data in reads:
        for data_received in receivers:
            data_received(data)
    in_bulk = [sink.read_stored() for sink in sinks]
    elapsed = time.thread_time_ns() - started
    return elapsed / (len(reads) * STREAMS), in_bulk


async def _measure(repeats: int) -> dict[str, float]:
    first, reads = _reads()
    paths = {"transport + stream": lambda: StreamAccumulator(lambda ids, text: None,
                                                             Watched(None, 0)),
             "transport, null sink": _NullSink}
    best = {name: float("inf") for name in paths}
    for _ in range(repeats):  # interleaved: a busy spell slows both alike
        for name, make_sink in paths.items():
            per_read_ns, in_bulk = _per_read_ns(make_sink, first, reads)
            best[name] = min(best[name], per_read_ns)
            if name == "transport + stream":  # every middle event read in bulk, as against vLLM
                assert in_bulk == [MIDDLE_EVENTS] * STREAMS, in_bulk[:3]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    best = run_event_loop(_measure(args.repeats))
    for name, ns in best.items():
        print(f"{name:<22} {ns / 1000:.3f} us per read")
    print(f"{'the stream alone':<22} "
          f"{(best['transport + stream'] - best['transport, null sink']) / 1000:.3f} us per read")


if __name__ == "__main__":
    main()
