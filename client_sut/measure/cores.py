"""Which cores the client's processes run on: the plan, decided before any starts."""

from __future__ import annotations

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


