"""Which cores the client's processes run on: the plan, decided before any starts."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CorePlan:
    loadgen: tuple[int, ...]  # this process: LoadGen's thread and the bridge's loop
    workers: tuple[tuple[int, ...], ...]  # each worker's cores; empty when not pinned
    available: tuple[int, ...]

    @property
    def pinned(self) -> bool:
        return bool(self.loadgen)

    def to_json(self) -> dict:
        return {"worker_processes": len(self.workers), "pinned": self.pinned,
                "available_cores": list(self.available),
                "loadgen_process_cores": list(self.loadgen) or None,
                "worker_cores": [list(cores) or None for cores in self.workers]}


def plan_cores(workers: int, available: Iterable[int]) -> CorePlan:
    """One core for the LoadGen process and one for each worker, when there are that many;
    otherwise no pinning at all (pinning several loops to one core only adds to their lag)."""
    cores = tuple(sorted(available))
    if workers and len(cores) >= workers + 1:
        return CorePlan((cores[0],), tuple((core,) for core in cores[1:workers + 1]), cores)
    return CorePlan((), tuple(() for _ in range(workers)), cores)




def auto_workers(expected_tokens_per_s: float | None, one_core_tokens_per_s: float | None,
                 cores: int, safe_share: float) -> tuple[int, str]:
    """`--workers auto`: how many worker processes, and why. With a calibrated one-core
    capacity and a known rate, as many loops as keep each under `safe_share` of a core (none
    when one loop does; never more than the cores left beside LoadGen's process); without
    them, a worker per core beside LoadGen's process, where there are at least two such cores."""
    spare = max(0, cores - 1)
    if expected_tokens_per_s and one_core_tokens_per_s:
        loops = math.ceil(expected_tokens_per_s / (safe_share * one_core_tokens_per_s))
        why = (f"{expected_tokens_per_s:,.0f} tokens/s expected, one core takes "
               f"{one_core_tokens_per_s:,.0f} (calibrated), {safe_share:.0%} of it each")
        if loops <= 1:
            return 0, f"{why}: the run's own loop is enough"
        if spare < 2:
            return 0, f"{why}: {loops} loops needed, but {cores} cores leave none to shard over"
        return min(loops, spare), why + (f"; {spare} cores beside LoadGen's" if loops > spare
                                         else "")
    if spare >= 2:
        return spare, f"no calibrated capacity or rate: a worker on each of {spare} spare cores"
    return 0, f"{cores} cores: the streams stay on the run's own loop"
