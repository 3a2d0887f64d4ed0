"""Outlier ejection's rule (measure/ejection.py) and where its spans land on the report."""

from __future__ import annotations

from client_sut.measure.ejection import EJECT_AFTER, Ejection, Outliers
from client_sut.records import ErrorKind, RequestError
from client_sut.report.figures import EjectionSpan, Timeline, ejection_spans
from client_sut.report.plots import over_time

REFUSED = RequestError(ErrorKind.REFUSED, "connection refused by http://b")
HTTP_500 = RequestError(ErrorKind.HTTP_STATUS, "HTTP 500: boom")


def test_an_endpoint_is_ejected_after_its_connections_fail_so_many_times_in_a_row():
    outliers = Outliers(["http://a", "http://b"])
    for _ in range(EJECT_AFTER - 1):
        assert outliers.outcome("http://b", REFUSED, 1) is None
    ejection = outliers.outcome("http://b", REFUSED, 7)
    assert ejection == Ejection("http://b", 7, f"{EJECT_AFTER} connections in a row failed "
                                               f"(last: connection refused by http://b)")
    assert outliers.is_out("http://b") and not outliers.is_out("http://a")


def test_an_answer_ends_the_streak_and_http_errors_never_eject():
    outliers = Outliers(["http://a", "http://b"])
    for _ in range(EJECT_AFTER - 1):
        outliers.outcome("http://b", REFUSED, 1)
    outliers.outcome("http://b", None, 2)  # it answered: a server that is there
    for _ in range(EJECT_AFTER * 3):
        assert outliers.outcome("http://b", HTTP_500, 3) is None
    assert outliers.outcome("http://b", REFUSED, 4) is None


def test_the_last_endpoint_in_the_balance_stays_in_and_one_put_back_starts_afresh():
    outliers = Outliers(["http://a", "http://b"])
    for _ in range(EJECT_AFTER):
        outliers.outcome("http://b", REFUSED, 1)
    for _ in range(EJECT_AFTER * 2):
        assert outliers.outcome("http://a", REFUSED, 2) is None
    back = outliers.readmit("http://b", 9, "its health path answered (/health: HTTP 200)")
    assert (back.readmitted_ns, back.ejected_ns) == (9, 1) and not outliers.is_out("http://b")
    for _ in range(EJECT_AFTER - 1):
        assert outliers.outcome("http://b", REFUSED, 10) is None


def test_the_report_shades_each_ejection_on_the_time_axis():
    endpoints = [{"url": "http://a", "ejections": []},
                 {"url": "http://b", "ejections": [{"ejected_ns": 3_000_000_000,
                                                    "out_s": 2.5}]}]
    spans = ejection_spans(endpoints, start_ns=1_000_000_000)
    assert spans == (EjectionSpan("http://b", 2.0, 4.5),)
    line = Timeline((0.0, 1.0), (1, 1), (10, 10), (1, 1), (5.0, 5.0), (6.0, 6.0), None)
    assert "ejected: http://b" in over_time(line, spans)
