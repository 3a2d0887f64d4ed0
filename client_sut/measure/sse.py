"""Server-sent events framed off raw bytes.

The caller stamps the time when a read arrives and feeds the bytes here; every event that the
read completes belongs to that arrival time. (After a stream's first token, stream.py feeds its
stored reads here, still read by read, only when they are not one plain event each.) Only what
an OpenAI-compatible stream needs is kept: the `data` of each event (several data lines are
joined with a newline, as the SSE specification says). Comments (keep-alives) and the `event`,
`id` and `retry` fields are skipped.
"""

from __future__ import annotations

_DATA = b"data:"


class SseScanner:
    """Splits a byte stream into event payloads; holds back an unfinished event."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = _normalise_newlines(buffer)
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[end + 2:]
        payloads = []
        for block in buffer[:end].split(b"\n\n"):
            payload = _payload(block)
            if payload is not None:
                payloads.append(payload)
        return payloads

    @property
    def pending(self) -> bytes:
        """Bytes of an event that has not been terminated (a stream cut short leaves these)."""
        return self._buffer


def _normalise_newlines(buffer: bytes) -> bytes:
    # A CR at the very end may be the first half of a CRLF split across reads: keep it as is
    # until the next read shows what follows it.
    tail = b""
    if buffer.endswith(b"\r"):
        buffer, tail = buffer[:-1], b"\r"
    return buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail


def _payload(block: bytes) -> bytes | None:
    if block.startswith(_DATA) and b"\n" not in block:  # the usual case: one data line
        return block[6:] if block[5:6] == b" " else block[5:]
    data_lines = []
    for line in block.split(b"\n"):
        if line.startswith(_DATA):
            data_lines.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line == b"data":
            data_lines.append(b"")
    if not data_lines:
        return None
    return b"\n".join(data_lines)
