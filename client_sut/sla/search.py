"""Which rate to probe next: bracket by doubling and halving from the start, then bisect in log
space until the highest pass and the lowest fail are within the tolerance. Pure.

Near the edge a p99 depends on how long the run is: a longer run meets rarer bursts, and a rate
a little over capacity builds its queue too slowly to show in a short one. So once the bracket
is narrow (within NEAR_EDGE), probes take the confirmation's size, and only passes at that size
bound the answer from below: the highest short pass is probed again at full size first. A fail
of any size stands (a longer run at the same rate only meets more bursts), unless a run at least
as long passed at a higher rate: such a fail is noise (a stalled machine) until a second probe
of the same rate and size fails again, and the latest probe of a rate and size is what counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Below the start divided by this, the search gives up: even a trickle of queries fails.
LOWEST_FRACTION = 1024
NEAR_EDGE = 1.25
# From a predicted start the first step is to the edge's bracket; each further one squares it
# (a prediction far off is left fast), up to doubling.
PREDICTED_STEP = NEAR_EDGE
MAX_STEP = 2.0


@dataclass(frozen=True, slots=True)
class Probed:
    qps: float
    passed: bool
    full_size: bool = False  # ran at the confirmation's size


@dataclass(frozen=True, slots=True)
class NextProbe:
    qps: float
    full_size: bool


@dataclass(frozen=True, slots=True)
class Bracket:
    highest_pass: float | None
    lowest_fail: float | None


def latest(history: Sequence[Probed]) -> list[Probed]:
    """The latest probe of each rate and size: a repeat replaces what it repeated."""
    return list({(p.qps, p.full_size): p for p in history}.values())


def bracket(history: Sequence[Probed], full_size_only: bool = False) -> Bracket:
    """The highest pass below the lowest fail (a pass above a fail is noise near the edge)."""
    history = latest(history)
    fails = [p.qps for p in history if not p.passed]
    lowest_fail = min(fails) if fails else None
    passes = [p.qps for p in history if p.passed and (p.full_size or not full_size_only)
              and (lowest_fail is None or p.qps < lowest_fail)]
    return Bracket(max(passes) if passes else None, lowest_fail)


def near_edge(history: Sequence[Probed]) -> bool:
    found = bracket(history)
    return (found.highest_pass is not None and found.lowest_fail is not None
            and found.lowest_fail <= found.highest_pass * NEAR_EDGE)


def next_probe(history: Sequence[Probed], start_qps: float, tolerance: float,
               step: float = 2.0) -> NextProbe | None:
    """The next probe, or None when the search is over (the bracket is narrow enough, or even
    the lowest rate worth trying failed). Until a pass and a fail bracket the answer, the rate
    is multiplied or divided by step: 2 from a guess, PREDICTED_STEP from a start the measured
    curve predicts (near the edge already), squared at each further step up to MAX_STEP."""
    if not history:
        return NextProbe(start_qps, False)
    doubtful = _doubtful_fail(history)
    if doubtful is not None:
        return NextProbe(doubtful.qps, doubtful.full_size)
    full_size = near_edge(history)
    found = bracket(history)
    rates = min(8, len({p.qps for p in history}))  # 1.25 ** 2 ** 7 is far past MAX_STEP
    step = min(MAX_STEP, step ** (2 ** (rates - 1)))
    if found.lowest_fail is None:
        return NextProbe(step * found.highest_pass, full_size)
    if found.highest_pass is None:
        lower = found.lowest_fail / step
        return None if lower < start_qps / LOWEST_FRACTION else NextProbe(lower, full_size)
    if full_size:
        proven = bracket(history, full_size_only=True).highest_pass
        if proven is None:  # the best short pass, now at full size
            return NextProbe(found.highest_pass, True)
        found = Bracket(proven, found.lowest_fail)
    if found.lowest_fail <= found.highest_pass * (1 + tolerance):
        return None
    return NextProbe(math.sqrt(found.highest_pass * found.lowest_fail), full_size)


def _doubtful_fail(history: Sequence[Probed]) -> Probed | None:
    """The lowest fail, when a run at least as long passed at a higher rate and the fail has not
    been repeated yet."""
    current = latest(history)
    fails = [p for p in current if not p.passed]
    if not fails:
        return None
    lowest = min(fails, key=lambda p: (p.qps, p.full_size))
    repeats = sum(1 for p in history if (p.qps, p.full_size) == (lowest.qps, lowest.full_size))
    contradicted = any(p.passed and p.qps > lowest.qps and (p.full_size or not lowest.full_size)
                       for p in current)
    return lowest if contradicted and repeats == 1 else None
