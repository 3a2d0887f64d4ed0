"""Warm-up: a few untimed requests to every endpoint before LoadGen starts.

A server's first requests are slow (kernels compiled, caches allocated, connections opened), and
a run that measured them would charge that to the deployment. The warm-up prompts are the
benchmark's instruction around a built-in article that is not in any dataset, so no prefix cache
is primed for the measured samples beyond the instruction every sample shares anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from client_sut.data.dataset import Sample
from client_sut.measure.dispatch import EndpointPool
from client_sut.measure.stream import finish_request, send_request
from client_sut.request import Api

WARMUP_ARTICLE = (
    "A small town library reopened on Saturday after a year of repairs to its roof and heating. "
    "Volunteers carried boxes of books back onto new shelves, and the children's corner now has "
    "a reading tent made by a local school. The mayor thanked the builders and said the hall "
    "upstairs would host evening classes in the spring. Opening hours are unchanged."
)
WHAT_IS_SENT = ("the benchmark's prompt around a built-in article that is no dataset sample, "
                "numbered so that no two are alike")


def warmup_samples(count: int) -> list[Sample]:
    return [Sample(f"{WARMUP_ARTICLE} (Notice {number}.)", "") for number in range(count)]


async def warm_up(pool: EndpointPool, api: Api, bodies: list[bytes],
                  redact: Callable[[str], str]) -> dict:
    """Sends every body to every endpoint at once and waits for the answers. Failures are
    reported, not raised: the measured run that follows shows whatever is wrong."""
    started = time.perf_counter_ns()

    async def one(url: str, connections, body: bytes):
        inflight = send_request(connections, api, body, on_first_token=_ignore_first_token,
                                watchdog=pool.watchdog)
        return await finish_request(inflight, connections, url, sample_index=-1,
                                    issue_ns=time.perf_counter_ns(), watchdog=pool.watchdog)

    records = await asyncio.gather(*(one(url, connections, body)
                                     for url, connections in pool.connection_pools()
                                     for body in bodies))
    failed = [r for r in records if r.error is not None]
    return {
        "requests_per_endpoint": len(bodies),
        "requests": len(records),
        "errors": len(failed),
        "first_error": redact(f"{failed[0].endpoint}: {failed[0].error.message}")
        if failed else None,
        "output_tokens": sum(r.output_tokens for r in records if r.error is None),
        "seconds": round((time.perf_counter_ns() - started) / 1e9, 3),
        "prompts": WHAT_IS_SENT,
    }


def _ignore_first_token(_ids, _text) -> None:
    """Nothing is reported to LoadGen for a warm-up request."""
    return None
