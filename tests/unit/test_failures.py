"""Failed requests are said first, in every verdict: the words decided once (analysis/failures)
and where each command and the report put them."""

from __future__ import annotations

from array import array
from pathlib import Path

from client_sut.analysis.failures import error_examples, failed_requests
from client_sut.records import ErrorKind, RequestError, RequestRecord, TokenIdSource
from client_sut.report.figures import run_verdict
from client_sut.runs.summary import run_summary_lines
from client_sut.submission.checks import failed_runs

TOO_MANY = "cannot connect to http://127.0.0.1:1: [Errno 24] Too many open files"


def record(error: RequestError | None) -> RequestRecord:
    return RequestRecord(
        sample_index=0, endpoint="http://127.0.0.1:1", issue_ns=0, send_ns=1,
        first_byte_ns=None, end_ns=2, event_ns=array("q"), event_tokens=array("i"),
        token_ids=array("i"), token_id_source=TokenIdSource.NONE, server_completion_tokens=None,
        finish_reason=None, http_status=None, error=error)


def client(errors_by_kind: dict[str, int], requests: int = 13_600) -> dict:
    return {"requests": requests, "issued": requests, "errors": sum(errors_by_kind.values()),
            "errors_by_kind": errors_by_kind,
            "error_examples": {kind: TOO_MANY if kind == "connect" else f"{kind} happened"
                               for kind in errors_by_kind}}


def test_each_kind_keeps_its_most_common_message():
    records = ([record(RequestError(ErrorKind.CONNECT, TOO_MANY))] * 3
               + [record(RequestError(ErrorKind.CONNECT, "refused once"))]
               + [record(RequestError(ErrorKind.TIMEOUT, "gap timeout")), record(None)])
    assert error_examples(records) == {"connect": TOO_MANY, "timeout": "gap timeout"}


def test_the_note_names_how_many_failed_of_how_many_and_why_most_first():
    note = failed_requests(client({"timeout": 2, "connect": 12_598}))
    assert note == (f"12,600 of 13,600 requests failed: connect (12,598: {TOO_MANY}); "
                    f"timeout (2: timeout happened)")


def test_no_note_without_failures_nor_for_the_clients_own_cancellations():
    assert failed_requests(client({})) is None
    assert failed_requests(client({"cancelled": 40})) is None  # an interrupt's: said apart


def run_results(errors_by_kind: dict[str, int], result: str = "VALID") -> dict:
    figures = {"p50": 1.0, "p90": 1.0, "p99": 1.0}
    note = failed_requests(client(errors_by_kind))
    return {
        "scenario": "Offline", "mode": "performance", "interrupted": False,
        "compliant": note is None, "compliance_notes": [note] if note else [],
        "loadgen": {"result": result, "tokens_per_second": 10.0, "ttft_ms": figures,
                    "tpot_ms": figures, "errors": []},
        "client": {**client(errors_by_kind), "output_tokens_per_second": 10.0,
                   "ttft_ms": figures, "tpot_ms": figures},
        "self_check": {"client_cpu_us_per_token": 8.0, "event_loop_busy_share": 0.5,
                       "issue_lag_ms": figures, "event_loop_lag_ms": figures, "warnings": []},
        "endpoints": [{}], "warnings": []}


def test_the_printed_headline_says_the_failures_before_loadgens_verdict():
    headline = run_summary_lines(run_results({"connect": 12_598}), Path("out"))[0]
    assert headline == (f"Offline performance: FAILED: 12,598 of 13,600 requests failed: "
                        f"connect (12,598: {TOO_MANY}); LoadGen VALID")
    clean = run_summary_lines(run_results({}), Path("out"))[0]
    assert clean == "Offline performance: LoadGen VALID"


def test_the_reports_verdict_says_the_failures_first():
    verdict = run_verdict(run_results({"connect": 12_598}))
    assert not verdict.ok
    assert verdict.headline == "FAILED REQUESTS (LoadGen VALID)"
    assert verdict.reasons[0].startswith("12,598 of 13,600 requests failed: connect")


def test_the_submission_names_each_run_whose_requests_failed():
    findings = failed_runs({("Server", "performance"): run_results({"disconnected": 3}),
                            ("Server", "accuracy"): run_results({})})
    assert [(f.scenario, f.check) for f in findings] == [("Server", "failed_requests")]
    assert findings[0].message.startswith("performance run: 3 of 13,600 requests failed")


def test_an_sla_confirmed_with_failed_requests_is_said_failed_and_exits_1():
    from client_sut.errors import EXIT_FAILED
    from client_sut.sla.command import confirmed
    from client_sut.result_files.sla import Probe, SlaLimits, SlaResult

    note = "3 of 1,200 requests failed: refused (3: connection refused)"
    search = SlaResult("Server", SlaLimits(2000, 100))
    confirmation = Probe(12.5, "confirm-1-12.5qps", "pass", "VALID", failed_requests=note)
    sla, status = confirmed(search, confirmation)
    assert status == EXIT_FAILED
    assert not sla.compliant
    assert sla.compliance_notes[0] == f"the confirmation at 12.5 QPS: {note}"
    assert sla.answer_line().startswith(f"FAILED: {note} in the confirmation at 12.5 queries/s")
