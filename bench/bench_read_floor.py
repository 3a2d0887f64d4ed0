"""The floor under any client's CPU per token here: reads that do nothing but count bytes.

The emitter streams as vLLM's engine steps do (one write per event, 128 tokens, steps back to
back), and a client that only writes each request and counts its reads (a bare uvloop protocol:
no stamp, no HTTP parsing, no record, no LoadGen) takes the same load as bench_capacity.py's
`step-256`. Its CPU per token is what the kernel (the loopback read, the ACK it sends, epoll)
and the event loop's own callback cost on this machine, before any client does any work: the
least a Python client can pay per token at one event per read. Compare it with
bench_capacity.py's step-256 row for client_sut.

It also counts the TCP segments this machine sent (/proc/net/snmp) less the emitter's events:
the ACKs a client's reads make the kernel send are part of what a read costs.

    python bench/bench_read_floor.py [--streams 256] [--requests 3000] [--repeats 3]

With `--url` it takes one run against an emitter already started and writes its figures to
`--out` as JSON: bench_capacity.py runs it so, as the client "bare reads", beside the others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client_sut.measure.transport import Origin  # noqa: E402
from client_sut.servers.emitter import EmitterProcess, run_event_loop  # noqa: E402

OUTPUT_TOKENS = 128
BODY = b'{"model":"emitter","prompt":"floor","max_tokens":128,"stream":true}'
END = b"0\r\n\r\n"  # the last chunk of a chunked body: nothing follows in the emitter's responses


class _CountingClient(asyncio.Protocol):
    """One connection, one request after another, until the run has issued them all."""

    def __init__(self, run: _Run, request: bytes) -> None:
        self.run = run
        self.request = request
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._next()

    def data_received(self, data: bytes) -> None:
        self.run.reads += 1
        if data.endswith(END):
            self.run.responses += 1
            self._next()

    def _next(self) -> None:
        if self.run.issued < self.run.requests:
            self.run.issued += 1
            self.transport.write(self.request)
        else:
            self.transport.close()
            self.run.closed += 1
            if self.run.closed == self.run.streams:
                self.run.done.set_result(None)


class _Run:
    def __init__(self, streams: int, requests: int) -> None:
        self.streams, self.requests = streams, requests
        self.issued = self.responses = self.reads = self.closed = 0
        self.done = asyncio.get_running_loop().create_future()


def _segments_sent() -> int:
    with open("/proc/net/snmp") as snmp:
        names, values = [line.split() for line in snmp if line.startswith("Tcp:")]
    return int(values[names.index("OutSegs")])


async def _measure(host: str, port: int, streams: int, requests: int) -> dict:
    loop = asyncio.get_running_loop()
    run = _Run(streams, requests)
    request = (b"POST /v1/completions HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json"
               b"\r\nContent-Length: %d\r\n\r\n%s" % (host.encode(), port, len(BODY), BODY))
    segments = _segments_sent()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    for _ in range(streams):
        await loop.create_connection(lambda: _CountingClient(run, request), host, port)
    await asyncio.wait_for(run.done, 600)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    tokens = run.responses * OUTPUT_TOKENS
    return {"tokens": tokens, "reads": run.reads, "wall_s": wall,
            "user_s": after.ru_utime - cpu.ru_utime, "system_s": after.ru_stime - cpu.ru_stime,
            "extra_segments": _segments_sent() - segments - tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--url", help="one run against this emitter, its figures to --out")
    parser.add_argument("--out", help="with --url: where its figures go (JSON)")
    args = parser.parse_args()
    if args.url:
        if not args.out:
            parser.error("--url needs --out")
        origin = Origin.from_url(args.url)
        figures = run_event_loop(_measure(origin.host, origin.port, args.streams, args.requests))
        Path(args.out).write_text(json.dumps(figures))
        return
    print(f"bare reads, {args.streams} streams x {OUTPUT_TOKENS} tokens, one write per event, "
          f"steps back to back")
    print(f"{'run':>3} {'tok/s':>9} {'reads/tok':>9} {'us/tok':>7} {'user':>6} {'kernel':>7} "
          f"{'segments/tok':>12}")
    for repeat in range(1, args.repeats + 1):
        emitter = EmitterProcess("--engine-step-ms", "0", "--first-token-ms", "0",
                                 "--output-tokens", str(OUTPUT_TOKENS))
        try:
            origin = Origin.from_url(emitter.url)
            r = run_event_loop(_measure(origin.host, origin.port, args.streams, args.requests))
        finally:
            emitter.stop()
        tokens = r["tokens"]
        per_token = 1e6 / tokens
        print(f"{repeat:>3} {tokens / r['wall_s']:>9,.0f} {r['reads'] / tokens:>9.2f} "
              f"{(r['user_s'] + r['system_s']) * per_token:>7.2f} {r['user_s'] * per_token:>6.2f} "
              f"{r['system_s'] * per_token:>7.2f} {r['extra_segments'] / tokens:>12.2f}")
    print("us/tok: this process's CPU (user + kernel) per token; segments/tok: TCP segments "
          "sent on this machine beyond the emitter's events (the client's ACKs, mostly)")


if __name__ == "__main__":
    main()
