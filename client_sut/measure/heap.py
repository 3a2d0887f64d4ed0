"""Keeping the cyclic garbage collector from stalling a latency-critical event loop.

A full collection walks every tracked object. Set-up can leave ~350k of them (transformers
imports torch: ~210 ms per full collection here), so what set-up leaves is frozen as the
measured part starts: frozen objects are never traversed again.

A process whose heap grows with what it serves freezes it again every second (`growing`): the
emitter, whose log keeps every request (a 5,000 requests/s emitter stalled ~450 ms at a time
until it was frozen too). The client does not: it keeps only the newest records (the rest are
on disk, measure/record_log.py), so its young heap stays small, and freezing it would keep
forever the reference cycles a finished request leaves (a task and the frames it holds), which
only the collector frees: an hour's Server run grew 23 MiB that way (bench/bench_soak.py).
"""

from __future__ import annotations

import asyncio
import gc

FREEZE_INTERVAL_S = 1.0


class HeapFreezer:
    def __init__(self, loop: asyncio.AbstractEventLoop, growing: bool = False) -> None:
        gc.collect()
        gc.freeze()
        self._loop = loop
        self._handle = loop.call_later(FREEZE_INTERVAL_S, self._freeze) if growing else None

    def _freeze(self) -> None:
        gc.freeze()
        self._handle = self._loop.call_later(FREEZE_INTERVAL_S, self._freeze)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
