"""What a sweep makes of its points between runs (the runs themselves: tests/integration/
test_sweep.py): the Pareto front over the curve's points only, the verdict, the printed table."""

from __future__ import annotations

from client_sut.result_files.sweep import PlanSummary, SweepLimits, SweepPoint, SweepResult
from client_sut.sweep.command import _verdict, _with_front, front_lines

FIGURES = {"ttft_ms": {"p50": 80.0, "p90": 90.0, "p99": 99.0},
           "tpot_ms": {"p50": 9.0, "p90": 10.0, "p99": 11.0}, "requests": 64, "errors": 0}


def point(name: str, kind: str, system: float | None, per_user: float | None,
          **more) -> SweepPoint:
    figures = FIGURES if system is not None else {}
    return SweepPoint(name, kind, system_tokens_per_s=system, tokens_per_s_per_user=per_user,
                      dir=name, **figures, **more)


def sweep(*points: SweepPoint, planned: int | None = None) -> SweepResult:
    names = tuple(p.name for p in points)
    return SweepResult(SweepLimits(2000, 100), plan=PlanSummary(
        names if planned is None else names + ("more",) * (planned - len(names))), points=points)


def test_the_front_holds_the_points_no_other_beats_on_both_figures():
    measured = _with_front(sweep(point("c0001", "concurrency", 100.0, 100.0),
                                 point("c0004", "concurrency", 300.0, 90.0),
                                 point("c0008", "concurrency", 250.0, 80.0),  # beaten by c0004
                                 point("offline", "offline", 900.0, 20.0)))
    assert measured.front == ("offline", "c0004", "c0001")
    assert [p.on_front for p in measured.points] == [True, True, False, True]
    assert measured.step_function[0] == (20.0, 900.0)


def test_the_server_point_and_a_point_whose_server_was_lost_are_not_on_the_curve():
    measured = _with_front(sweep(point("c0001", "concurrency", 100.0, 100.0),
                                 point("c0004", "concurrency", 400.0, 95.0, aborted=True),
                                 point("server", "server", 500.0, 99.0)))
    assert measured.front == ("c0001",)


def test_the_verdict_says_the_worst_that_happened():
    done = point("c0001", "concurrency", 100.0, 100.0)
    assert _verdict(sweep(done)) == "complete"
    assert _verdict(sweep(done, planned=2)) == "incomplete"
    assert _verdict(sweep(done, point("c0002", "concurrency", None, None, failed=True,
                                      reason="the run wrote no results"))) == "failed_points"


def test_the_table_marks_the_front_and_says_why_a_point_has_no_figures():
    measured = _with_front(sweep(point("c0001", "concurrency", 100.0, 100.0),
                                 point("server", "server", None, None, failed=True,
                                       reason="not run: no point kept the limits")))
    header, first, skipped = front_lines(measured)
    assert header.split()[0] == "point" and first.endswith("*")
    assert skipped.split(None, 1) == ["server", "not run: no point kept the limits"]
