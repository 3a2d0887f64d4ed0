"""The client's Python work per read, at one event per read, without sockets or an emitter.

Against a busy vLLM a read carries one event, so what the client does per read is what it pays
per token. This feeds the real transport (`Connection.data_received`, httptools) and stream
(`StreamAccumulator`) byte for byte what the emitter writes in its engine-step mode: 256
connections, 128 events each, round-robin as an engine step writes them. It prints the CPU
(thread time, best of the repeats, so other processes count little) per read of the whole path
and of the transport with a sink that does nothing: the difference is the stream's scan and
record keeping. The kernel's part of a read (recv, epoll, wake-ups) is not in these figures;
`bench_capacity.py` measures everything together.

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
    STREAM_HEAD,
    _chunked,
    _event_head,
    _middle_event_template,
    _token_event,
    run_event_loop,
)

STREAMS, EVENTS = 256, 128


class _Pool:
    """What a Connection asks of its pool while one exchange runs."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()

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


def _reads() -> tuple[bytes, list[bytes]]:
    """The first read (headers and first token) and each later one, as the emitter frames them."""
    head = _event_head("completions", "cmpl-emitter-1", "emitter")
    first = STREAM_HEAD + _chunked(_token_event(head, "completions", " t5", [5], None, b"[1]"))
    middle = _middle_event_template(head, "completions")
    return first, [_chunked(middle % (b" t%d" % i, b"%d" % i)) for i in range(100, 100 + EVENTS)]


def _per_read_ns(make_sink, first: bytes, reads: list[bytes]) -> float:
    pool = _Pool()
    receivers, sinks = [], []
    for _ in range(STREAMS):
        connection = Connection(pool)
        connection.connection_made(_Transport())
        sinks.append(make_sink())
        connection.exchange(b"", sinks[-1])
        connection.data_received(first)
        receivers.append(connection.data_received)
    started = time.thread_time_ns()
    for data in reads:
        for data_received in receivers:
            data_received(data)
    elapsed = time.thread_time_ns() - started
    # Every event was taken by the fast path (sliced out, not decoded), as against vLLM.
    assert all(len(getattr(sink, "id_pieces", reads)) == len(reads) for sink in sinks)
    return elapsed / (len(reads) * STREAMS)


async def _measure(repeats: int) -> dict[str, float]:
    first, reads = _reads()
    paths = {"transport + stream": lambda: StreamAccumulator(lambda ids, text: None,
                                                             Watched(None, 0)),
             "transport, null sink": _NullSink}
    best = {name: float("inf") for name in paths}
    for _ in range(repeats):  # interleaved: a busy spell slows both alike
        for name, make_sink in paths.items():
            best[name] = min(best[name], _per_read_ns(make_sink, first, reads))
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
