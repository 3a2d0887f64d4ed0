"""Messages between the LoadGen process and a worker process, over one Unix socket pair.

Each message is a pickled tuple behind a 4-byte length. Both ends run it as an asyncio
protocol, so a message is handled in the loop callback that reads it: an issue reaches the
worker's `StreamDriver`, and a first token reaches LoadGen, with no task or thread in between.
Writes never block a loop (the transport buffers what the socket cannot take at once).
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from collections.abc import Callable

_LENGTH = struct.Struct("!I")


class Channel(asyncio.Protocol):
    """One end of the socket pair. `on_message` gets every message in order; `on_closed` once,
    with the error if the other end broke off (None for an orderly close)."""

    def __init__(self, on_message: Callable[[tuple], None],
                 on_closed: Callable[[Exception | None], None]) -> None:
        self._on_message = on_message
        self._on_closed = on_closed
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self.closed = False
        self._lost: asyncio.Future | None = None  # made by wait_closed, done at connection_lost

    def send(self, message: tuple) -> None:
        if self.closed or self._transport is None:
            return
        payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        self._transport.write(_LENGTH.pack(len(payload)) + payload)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        """Until the connection is gone: what was written before close() has been sent (a
        process that ends sooner loses what its transport still held)."""
        if self.closed:
            return
        if self._lost is None:
            self._lost = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._lost)

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, start)
            end = start + _LENGTH.size + length
            if len(buffer) < end:
                break
            message = pickle.loads(buffer[start + _LENGTH.size:end])
            start = end
            self._on_message(message)
        del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self._on_closed(exc)


async def open_channel(sock, on_message: Callable[[tuple], None],
                       on_closed: Callable[[Exception | None], None]) -> Channel:
    _, channel = await asyncio.get_running_loop().create_unix_connection(
        lambda: Channel(on_message, on_closed), sock=sock)
    return channel
