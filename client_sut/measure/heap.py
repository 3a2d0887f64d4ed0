"""Keeping the cyclic garbage collector from stalling a latency-critical event loop.

A full collection walks every tracked object. Set-up can leave ~350k of them (transformers
imports torch: ~210 ms per full collection here), and a run's records, or the emitter's log of
every request it served, grow into the same trouble as the run goes on (86k records: 39 ms at
4,000 QPS). An emitter serving 5,000 requests/s stalled ~450 ms at a time, and the client's
queries piled up behind it, until its heap was frozen too. Frozen objects are never traversed
again, so what has survived is frozen at the start and then every second: only young objects
are ever collected.
"""

from __future__ import annotations

import asyncio
import gc

FREEZE_INTERVAL_S = 1.0


class HeapFreezer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        gc.collect()
        gc.freeze()
        self._loop = loop
        self._handle = loop.call_later(FREEZE_INTERVAL_S, self._freeze)

    def _freeze(self) -> None:
        gc.freeze()
        self._handle = self._loop.call_later(FREEZE_INTERVAL_S, self._freeze)

    def cancel(self) -> None:
        self._handle.cancel()
