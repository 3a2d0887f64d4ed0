"""Request timeouts, enforced by one periodic scan for the whole run, not a timer per read.

A request registers a `Watched` entry and, as it streams, stores the arrival time of each read
in it (one attribute store: the hot path pays nothing more). The watchdog wakes a few times per
shortest timeout, and cancels each request past one of its deadlines, after writing down which:
- first byte: no response headers within `first_byte` seconds of the send;
- gap: no data for `gap` seconds once the response has started;
- total: the request is older than `total` seconds.
The request turns that cancellation into a TIMEOUT record (see stream.py).
"""

from __future__ import annotations

import asyncio
import time

from client_sut.request import Timeouts

NS = 1_000_000_000


class Watched:
    __slots__ = ("task", "send_ns", "last_ns", "started", "reason")

    def __init__(self, task: asyncio.Task | None, send_ns: int) -> None:
        self.task = task
        self.send_ns = send_ns
        self.last_ns = send_ns  # the latest read (or the send)
        self.started = False  # response headers have arrived
        self.reason: str | None = None  # why the watchdog cancelled it


class Watchdog:
    def __init__(self, timeouts: Timeouts) -> None:
        self._first_byte_ns = int(timeouts.first_byte * NS)
        self._gap_ns = int(timeouts.gap * NS)
        self._total_ns = int(timeouts.total * NS)
        self._timeouts = timeouts
        shortest = min(timeouts.first_byte, timeouts.gap, timeouts.total)
        self.tick_s = min(1.0, max(0.01, shortest / 20))
        self._watched: set[Watched] = set()

    def watch(self, entry: Watched) -> None:
        self._watched.add(entry)

    def forget(self, entry: Watched) -> None:
        self._watched.discard(entry)

    def expired(self, entry: Watched, now_ns: int) -> str | None:
        if now_ns - entry.send_ns > self._total_ns:
            return f"request not finished after {self._timeouts.total:g} s (--request-timeout)"
        if not entry.started and now_ns - entry.send_ns > self._first_byte_ns:
            return f"no response within {self._timeouts.first_byte:g} s (--first-byte-timeout)"
        if entry.started and now_ns - entry.last_ns > self._gap_ns:
            return f"no data for {self._timeouts.gap:g} s (--gap-timeout)"
        return None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            now_ns = time.perf_counter_ns()
            for entry in list(self._watched):
                reason = self.expired(entry, now_ns)
                # A request written before its task first ran has no task yet: next tick.
                if reason is not None and entry.reason is None and entry.task is not None:
                    entry.reason = reason
                    entry.task.cancel()
