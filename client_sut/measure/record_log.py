"""Every completed request, written to disk as it completes: a run holds only the newest.

A record keeps every event's arrival (about 2.4 KB for 128 tokens); held in memory, an hour at
32 requests/s would grow the client by 280 MB, and a crash would lose them all. Instead each
record is appended to `requests.partial.jsonl` in the output folder the moment it completes
(buffered, and flushed at least every FLUSH_EVERY_S: a crash loses at most that much), and only
the newest RECENT stay in memory for the live views, which also get each one as it comes
(`listeners`). At the end (`finish`) the analysis reads them back whole and the lines, sorted by
send time, become requests.jsonl; a run that never got there leaves the partial file behind,
holding what was measured.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from client_sut.records import RequestRecord
from client_sut.requests_file import encoded_line, record_of

PARTIAL_NAME = "requests.partial.jsonl"
BUFFER_BYTES = 1 << 18
FLUSH_EVERY_S = 1.0
RECENT = 1000  # the live view's rolling window


class RecordLog:
    """On the event loop thread only."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / PARTIAL_NAME
        self._file = self.path.open("wb", buffering=BUFFER_BYTES)
        self.recent: deque[RequestRecord] = deque(maxlen=RECENT)
        self.listeners: list[Callable[[RequestRecord], None]] = []
        self.count = 0
        self.ok_output_tokens = 0
        self._flushed = time.monotonic()

    def add(self, record: RequestRecord) -> None:
        self._file.write(encoded_line(record))
        now = time.monotonic()
        if now - self._flushed >= FLUSH_EVERY_S:
            self._file.flush()
            self._flushed = now
        self.recent.append(record)
        self.count += 1
        if record.error is None:
            self.ok_output_tokens += record.output_tokens
        for listener in self.listeners:
            listener(record)

    def finish(self, requests_path: Path) -> list[RequestRecord]:
        """Every record, read back (token ids as placeholders of the right count: they went to
        LoadGen as each request completed), in send order; their lines, as written, become
        `requests_path` in that order, and the partial file goes."""
        self._file.close()
        lines = self.path.read_bytes().splitlines(keepends=True)
        pairs = sorted(((record_of(line), line) for line in lines), key=lambda p: p[0].send_ns)
        with requests_path.open("wb") as out:
            out.writelines(line for _, line in pairs)
        self.path.unlink()
        return [record for record, _ in pairs]
