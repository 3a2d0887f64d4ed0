"""A Server run's p99 limits proven broken while it runs: an overloaded probe ends early.

LoadGen's p99 over at most `max_queries` queries is over a limit once p99_allowance(max_queries)
of them are over it, whatever the rest do. Requests that failed count as over both limits (a
failure is never a pass), and so does every query still waiting for its first token longer than
the TTFT limit: its TTFT can only grow. The client stamps each moment before LoadGen is told of
it, so what is over a limit here is over it in LoadGen's figures too. No I/O: the runner feeds
the watch from its records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from client_sut.analysis.early_stopping import p99_allowance
from client_sut.analysis.metrics import NS_PER_MS, over_limits
from client_sut.records import ErrorKind, RequestRecord


def most_queries(target_qps: float, min_duration_s: float, min_query_count: int,
                 pad_to: int | None = None) -> int:
    """A bound on the queries a Server run issues: LoadGen schedules Poisson arrivals until both
    its minimum duration and its minimum query count are met (mean plus five deviations), and in
    equal-issue mode pads the count to a multiple of the sample count (`pad_to`)."""
    expected = target_qps * min_duration_s
    bound = max(min_query_count, math.ceil(expected + 5 * math.sqrt(expected) + 10))
    return bound if not pad_to else -(-bound // pad_to) * pad_to


@dataclass(frozen=True, slots=True)
class BreachRule:
    ttft_limit_ms: float
    tpot_limit_ms: float
    max_queries: int

    @property
    def allowance(self) -> int:
        return p99_allowance(self.max_queries)


@dataclass(frozen=True, slots=True)
class Breach:
    constraint: str  # "ttft", "tpot" or "errors": what was lost
    reason: str


class BreachWatch:
    """Counts what is over each limit as records come in; says why once a limit is lost."""

    def __init__(self, rule: BreachRule) -> None:
        self.rule = rule
        self._ttft_ns = rule.ttft_limit_ms * NS_PER_MS
        self._tpot_ns = rule.tpot_limit_ms * NS_PER_MS
        self.over_ttft = self.over_tpot = self.failed = 0

    def update(self, finished: Iterable[RequestRecord], first_token_waits_since: Iterable[int],
               now_ns: int) -> Breach | None:
        """`finished`: the requests finished since the last update;
        `first_token_waits_since`: issue times of the open queries with no first token yet."""
        for record in finished:
            if record.error is not None:
                # An interrupt's cancellations are the watch's own doing, not the server's.
                self.failed += record.error.kind is not ErrorKind.CANCELLED
                continue
            slow_first, slow_tokens = over_limits(record, self._ttft_ns, self._tpot_ns)
            self.over_ttft += slow_first
            self.over_tpot += slow_tokens
        cutoff = now_ns - self._ttft_ns
        still_waiting = sum(1 for issued in first_token_waits_since if issued < cutoff)
        allowance = self.rule.allowance
        bound = f"p99 lost: {allowance} of at most {self.rule.max_queries} queries is 1%"
        if self.failed >= allowance:
            return Breach("errors", f"{self.failed} requests failed ({bound})")
        if self.over_ttft + still_waiting + self.failed >= allowance:
            return Breach("ttft", f"{self.over_ttft + still_waiting} requests over the "
                                  f"{self.rule.ttft_limit_ms:g} ms TTFT limit ({still_waiting} "
                                  f"still waiting) and {self.failed} failed ({bound})")
        if self.over_tpot + self.failed >= allowance:
            return Breach("tpot", f"{self.over_tpot} requests over the "
                                  f"{self.rule.tpot_limit_ms:g} ms TPOT limit and {self.failed} "
                                  f"failed ({bound})")
        return None
