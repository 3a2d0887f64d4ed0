"""The event loop every process of the client (and its test servers) runs on."""

from __future__ import annotations

import asyncio


def run_event_loop(coroutine):
    """asyncio.run on uvloop where it is installed (it does not build everywhere)."""
    try:
        import uvloop
        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)
