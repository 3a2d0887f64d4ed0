"""The headroom verdict: was the client the bottleneck of a run?"""

from __future__ import annotations

from client_sut.analysis.headroom import headroom
from client_sut.sla.verdict import PASS, UNDECIDED, ProbeFigures, judge


def check(lag_p99: float, issue_p99: float, workers: int = 0) -> dict:
    return {"event_loop_lag_ms": {"p99": lag_p99}, "issue_lag_ms": {"p99": issue_p99},
            "event_loop_busy_share": 0.2, "event_loop_cpu_s": 2.0, "streamed_tokens": 200_000,
            "streamed_tokens_per_second": 20_000.0,
            "workers": [{}] * workers}


def test_a_client_with_time_to_spare_says_how_much():
    room = headroom(check(0.3, 0.4), issue_lag_counts=True)
    assert not room.bottleneck
    # 10 us of loop CPU per token: one loop takes 100,000 tokens/s; 20,000 is a fifth of it.
    assert room.loop_cpu_us_per_token == 10.0 and room.max_tokens_per_second == 100_000
    assert room.used_share == 0.2
    assert room.line == "the client was not the bottleneck (used 20% of its capacity; loop lag " \
                        "p99 0.30 ms)"
    assert headroom(check(0.3, 0.4, workers=2), True).max_tokens_per_second == 200_000


def test_late_callbacks_or_late_writes_make_the_client_the_bottleneck():
    late_loop = headroom(check(3.5, 0.4), issue_lag_counts=True)
    assert late_loop.bottleneck and late_loop.line.startswith(
        "the client was the bottleneck: these latencies are partly the client's (its event "
        "loop ran callbacks 3.50 ms late at p99")
    assert headroom(check(0.3, 2.5), issue_lag_counts=True).bottleneck
    assert not headroom(check(1.3, 1.3), issue_lag_counts=True).bottleneck  # a warning only
    # Offline issues everything at once: a wait for a stream slot is no lateness of the client's.
    assert not headroom(check(0.3, 2_000.0), issue_lag_counts=False).bottleneck


def test_sla_never_passes_a_probe_whose_client_was_the_bottleneck():
    figures = dict(target_qps=10.0, queries=1000, result="VALID", ttft_p99_ms=100.0,
                   tpot_p99_ms=10.0, errors=0, over_ttft=0, over_tpot=0, early_stopping_met=True,
                   invalid_reason=None, stopped_early=None, interrupted=False)
    assert judge(ProbeFigures(**figures)).verdict == PASS
    starved = judge(ProbeFigures(**figures, client_bottleneck="the client was the bottleneck"))
    assert starved.verdict == UNDECIDED and "the client was the bottleneck" in starved.reason
