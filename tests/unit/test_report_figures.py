"""The report's figure data, from records made by hand (pure functions)."""

from __future__ import annotations

from array import array

import pytest

from client_sut.records import ErrorKind, RequestError, RequestRecord, TokenIdSource
from client_sut.report.figures import (
    cdf,
    endpoint_rows,
    latency_cdfs,
    run_verdict,
    sla_points,
    timeline,
)
from client_sut.result_files.sla import SlaResult

MS = 1_000_000
SEARCH = {"scenario": "Server", "limits": {"ttft_ms": 2000, "tpot_ms": 100}}


def record(send_ms: float, first_ms: float, gap_ms: float, tokens: int, endpoint: str = "a",
           error: bool = False) -> RequestRecord:
    times = [int((send_ms + first_ms + i * gap_ms) * MS) for i in range(tokens)]
    return RequestRecord(
        sample_index=0, endpoint=endpoint, issue_ns=int(send_ms * MS), send_ns=int(send_ms * MS),
        first_byte_ns=times[0] if times else None, end_ns=times[-1] + MS if times else
        int(send_ms * MS), event_ns=array("q", times), event_tokens=array("i", [1] * tokens),
        token_ids=array("i", [7] * tokens), token_id_source=TokenIdSource.SERVER,
        server_completion_tokens=tokens, finish_reason="length", http_status=200,
        error=RequestError(ErrorKind.TIMEOUT, "late") if error else None)


def test_the_cdf_has_a_fixed_size_and_exact_percentiles():
    values = [i * MS for i in range(1, 10_001)]
    c = cdf("TTFT", values, 2000.0)
    assert c.count == 10_000 and len(c.values_ms) == len(c.fractions) < 500
    assert c.p50_ms == pytest.approx(5000.5) and c.p99_ms == pytest.approx(9900.01)
    assert c.fractions[0] == 0 and c.fractions[-1] == 1.0 and c.values_ms[-1] == 10_000
    assert list(c.values_ms) == sorted(c.values_ms)
    assert any(f >= 0.999 for f in c.fractions[:-1])  # the tail is drawn, not jumped


def test_latency_cdfs_skip_failed_requests():
    records = [record(0, 20, 2, 5), record(10, 40, 4, 5), record(20, 500, 1, 5, error=True)]
    ttft, tpot, itl, e2e = latency_cdfs(records, 2000.0, 100.0)
    assert ttft.count == 2 and ttft.values_ms[0] == 20 and ttft.values_ms[-1] == 40
    assert tpot.limit_ms == 100.0 and tpot.values_ms[-1] == 4
    assert itl.count == 8 and e2e.count == 2 and itl.limit_ms is None


def test_the_timeline_counts_every_token_once_in_its_bin():
    records = [record(0, 100, 200, 10), record(500, 100, 200, 10), record(2500, 50, 10, 4)]
    line = timeline(records, 2000.0)
    assert line.t_s == (0.0, 1.0, 2.0)
    assert sum(line.tokens_per_s) == 24 and sum(line.requests_per_s) == 3
    assert line.in_flight == (2, 2, 1)
    assert line.ttft_p50_ms[0] == 100 and line.ttft_p50_ms[1] is None
    assert line.ttft_limit_ms == 2000.0


def test_endpoint_rows_show_each_endpoint_and_the_fields_others_add():
    records = [record(0, 20, 2, 11, "a"), record(0, 80, 8, 11, "b"), record(5, 1, 1, 1, "b",
                                                                            error=True)]
    rows = endpoint_rows(records, [{"url": "a", "requests": 1, "replica": "pod-1"},
                                   {"url": "b", "requests": 2, "ttft_ms": {}}])
    assert [(r.url, r.requests, r.errors) for r in rows] == [("a", 1, 0), ("b", 2, 1)]
    assert rows[1].ttft_p99_ms == 80 and rows[1].tpot_p50_ms == 8
    assert rows[0].extra == {"replica": "pod-1"} and rows[1].extra == {}
    assert rows[0].tokens_per_s == rows[1].tokens_per_s > 0


def results(**loadgen) -> dict:
    base = {"result": "VALID", "ttft_ms": {"p99": 100.0}, "tpot_ms": {"p99": 10.0},
            "ttft_limit_ms": 2000.0, "tpot_limit_ms": 100.0, "errors": []}
    return {"loadgen": {**base, **loadgen}, "client": {"errors": 0}, "interrupted": False}


def test_the_verdict_says_why_a_run_is_not_valid():
    assert run_verdict(results()).ok and run_verdict(results()).reasons == ()
    bad = run_verdict(results(result="INVALID", ttft_ms={"p99": 2500.0},
                              early_stopping_met=False))
    assert bad.headline == "INVALID" and not bad.ok
    assert "TTFT p99 2,500.0 ms is over the limit 2,000 ms" in bad.reasons
    assert "early stopping not met" in bad.reasons
    failed_accuracy = {**results(), "accuracy": {"passed": False}}
    assert run_verdict(failed_accuracy).reasons == ("accuracy failed",)


def test_sla_points_take_each_probe_and_the_confirmation():
    sla = {**SEARCH, "probes": [{"target_qps": 4, "verdict": "pass", "ttft_p99_ms": 90,
                                 "tpot_p99_ms": 9, "dir": "probe-1", "reason": ""},
                                {"target_qps": 8, "verdict": "fail", "ttft_p99_ms": 3000,
                                 "tpot_p99_ms": 20, "dir": "probe-2", "reason": ""}],
           "confirmation": {"target_qps": 4, "verdict": "pass", "ttft_p99_ms": 95,
                            "tpot_p99_ms": 9, "dir": "confirm", "reason": ""}}
    points = sla_points(SlaResult.from_json(sla), {"probe-1": 500.0, "confirm": 510.0})
    assert [(p.target_qps, p.verdict, p.confirmation, p.tokens_per_s) for p in points] == [
        (4, "pass", False, 500.0), (8, "fail", False, None), (4, "pass", True, 510.0)]


def test_a_probe_stopped_for_a_limit_shows_why_and_no_p99_that_hides_the_waiting():
    reason = ("stopped early: 21 requests over the 2000 ms TTFT limit (21 still waiting) and 0 "
              "failed")
    sla = {**SEARCH, "probes": [{"target_qps": 9, "verdict": "fail", "ttft_p99_ms": 185.0,
                       "tpot_p99_ms": 81.0, "dir": "probe-3", "stopped_early": True,
                       "constraint": "ttft", "reason": reason}]}
    [point] = sla_points(SlaResult.from_json(sla), {})
    assert point.reason == reason and point.lost == "ttft"
    assert point.shown_p99("ttft") is None and point.shown_p99("tpot") == 81.0


def test_goodput_is_said_in_words():
    from client_sut.report.figures import goodput_sentence

    assert goodput_sentence({"requests_within_limits": 1200, "share": 0.96,
                             "requests_per_second": 4.5, "over_ttft": 30, "over_tpot": 20,
                             "errors": 0}) == (
        "goodput at the answer: 1,200 requests within both limits (96.0% of them), 4.5 per "
        "second; 30 over the TTFT limit, 20 over the TPOT limit, 0 failed")
    assert goodput_sentence(None) == "goodput: none measured at a confirmed answer"


def test_the_sweep_figure_reads_at_a_glance():
    """Two panels a row, each wide enough that no two tick labels overlap; every axis from zero,
    so a flat line (tokens/s per user within 0.2%) looks flat; goodput joined in order of load."""
    from client_sut.report.figures import SweepPoint
    from client_sut.report.plots import sweep_figure

    points = [SweepPoint(f"c{c}", c, None, 520.0 * c ** 0.9, 498.6 - 0.15 * i, 20.0 + c,
                         c * 0.9, c * 0.85, c in (1, 8)) for i, c in enumerate((1, 2, 4, 8))]
    points.append(SweepPoint("offline", None, None, 3000.0, None, 900.0, 7.2, 6.0, False))
    points.append(SweepPoint("server", None, 3.0, 1500.0, 497.4, 40.0, 3.0, 3.0, False))
    figure = sweep_figure(points, [[497.4, 1500.0], [498.6, 520.0]], None)
    renderer = figure.canvas.get_renderer()
    axes = figure.get_axes()
    assert len(axes) == 5
    for ax in axes:
        assert ax.get_window_extent(renderer).width >= 300  # pixels at the figure's dpi
        assert ax.get_ylim()[0] == 0
        labels = [t.get_window_extent(renderer) for t in ax.get_xticklabels()
                  if t.get_text() and t.get_visible()]
        assert not any(a.overlaps(b) for a, b in zip(labels, labels[1:])), ax.get_title()
    goodput_x = list(axes[4].get_lines()[0].get_xdata())
    assert goodput_x == sorted(goodput_x)
