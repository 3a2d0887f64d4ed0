"""Was the client the bottleneck? One verdict per run, from its self-check (pure).

The client's own delays enter the latencies it reports: a callback its event loop runs late
(loop lag) delays every read and issue behind it, and in a Server run a request written late
(issue lag) has its wait in LoadGen's TTFT. Past LAG_LIMIT_MS at p99 the self-check warns; past
BOTTLENECK_LAG_MS the run measured the client as much as the server, and is not compliant (two
milliseconds against TTFT limits of 450-2,000 ms and TPOT limits of 40-100 ms). The verdict has
the margin because a p99 of a short run's few hundred queries wanders: on the 2-core CI machine
clients with a core to spare showed 0.3-1.27 ms at p99 (sla's 3 s probes), one sharing its
core with a busy loop 4.4 ms, and a 1 ms verdict turned sla's probes undecided at random. In Offline every sample is
issued at once and waits for a stream slot by design, so its issue lag is no verdict.

Beside the verdict, the room left: the share of a core each event loop was busy, its CPU per
streamed token, and the most tokens per second the loops could have taken at that cost, each on
a core of its own (with `client-sut calibrate`'s capacity where the run was given it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

LAG_LIMIT_MS = 1.0  # above this at p99 the client's delay shows in what it measures: a warning
BOTTLENECK_LAG_MS = 2.0  # above this at p99 the run measured the client (module docstring)


@dataclass(frozen=True, slots=True)
class Headroom:
    loops: int  # event loops that ran the streams: the run's own, or one per worker
    loop_busy_share: float | None  # the busiest loop's share of one core
    loop_lag_p99_ms: float | None
    issue_lag_p99_ms: float | None  # None where it is no verdict (Offline)
    loop_cpu_us_per_token: float | None
    max_tokens_per_second: float | None  # the loops' capacity at that cost, a core each
    calibrated_max_tokens_per_second: float | None
    used_share: float | None  # streamed tokens/s over the capacity
    bottleneck: bool
    reasons: tuple[str, ...]

    @property
    def line(self) -> str:
        if self.bottleneck:
            return ("the client was the bottleneck: these latencies are partly the client's ("
                    + "; ".join(self.reasons) + ")")
        used = "" if self.used_share is None else f"used {self.used_share:.0%} of its capacity; "
        lag = "-" if self.loop_lag_p99_ms is None else f"{self.loop_lag_p99_ms:.2f}"
        return f"the client was not the bottleneck ({used}loop lag p99 {lag} ms)"

    def to_json(self) -> dict:
        return {**asdict(self), "reasons": list(self.reasons), "verdict": self.line,
                "lag_limit_ms": BOTTLENECK_LAG_MS}


def headroom(self_check: dict, issue_lag_counts: bool) -> Headroom:
    """`self_check`: results.json's; `issue_lag_counts`: false where the issue lag is a wait
    for a stream slot by design (Offline)."""
    loops = len(self_check.get("workers") or ()) or 1
    tokens = self_check["streamed_tokens"]
    per_token = self_check["event_loop_cpu_s"] * 1e6 / tokens if tokens else None
    capacity = loops * 1e6 / per_token if per_token else None
    rate = self_check["streamed_tokens_per_second"]
    calibrated = self_check.get("calibrated_max_tokens_per_second")
    ceiling = min(c for c in (capacity, calibrated) if c) if capacity or calibrated else None
    lag = self_check["event_loop_lag_ms"]["p99"]
    issue = self_check["issue_lag_ms"]["p99"] if issue_lag_counts else None
    reasons = []
    if lag is not None and lag > BOTTLENECK_LAG_MS:
        reasons.append(f"its event loop ran callbacks {lag:.2f} ms late at p99, over the "
                       f"{BOTTLENECK_LAG_MS:g} ms the latencies absorb")
    if issue is not None and issue > BOTTLENECK_LAG_MS:
        reasons.append(f"it wrote requests {issue:.2f} ms after LoadGen issued them at p99, "
                       f"over {BOTTLENECK_LAG_MS:g} ms")
    return Headroom(
        loops=loops, loop_busy_share=self_check["event_loop_busy_share"],
        loop_lag_p99_ms=lag, issue_lag_p99_ms=issue,
        loop_cpu_us_per_token=None if per_token is None else round(per_token, 3),
        max_tokens_per_second=None if capacity is None else round(capacity, 1),
        calibrated_max_tokens_per_second=calibrated,
        used_share=round(rate / ceiling, 4) if rate is not None and ceiling else None,
        bottleneck=bool(reasons), reasons=tuple(reasons))
