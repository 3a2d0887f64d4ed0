"""A sweep point's MLPerf Endpoints files from its records: events in time order with one
first token per request, errors as Endpoints names them, and a config that says how long the
point ran against its official floor."""

from __future__ import annotations

from array import array

from client_sut.records import ErrorKind, RequestError, RequestRecord, TokenIdSource
from client_sut.sweep.endpoints_files import benchmark_config, event_lines

MS = 1_000_000


def record(index: int, send_ms: int, token_ms: list[int], error: bool = False) -> RequestRecord:
    """Its tokens one per event at token_ms, then a usage chunk with none."""
    last_ms = token_ms[-1] if token_ms else send_ms
    events = [*token_ms, last_ms + 1] if token_ms else []
    return RequestRecord(
        sample_index=index, endpoint="http://127.0.0.1:8000", issue_ns=send_ms * MS,
        send_ns=send_ms * MS, first_byte_ns=(send_ms + 1) * MS, end_ns=(last_ms + 1) * MS,
        event_ns=array("q", [t * MS for t in events]),
        event_tokens=array("i", [1] * len(token_ms) + [0] * (len(events) - len(token_ms))),
        token_ids=array("i", [5] * len(token_ms)), token_id_source=TokenIdSource.SERVER,
        server_completion_tokens=len(token_ms), finish_reason=None if error else "length",
        http_status=500 if error else 200,
        error=RequestError(ErrorKind.HTTP_STATUS, "HTTP 500: engine dead") if error else None)


def test_events_are_in_time_order_inside_the_session_with_one_first_token_each():
    records = [record(7, 10, [30, 40, 50]), record(3, 0, [20, 60])]  # completed out of order
    lines = event_lines(records)
    kinds = [line["event_type"] for line in lines]
    assert kinds[:2] == ["session.started", "session.start_performance_tracking"]
    assert kinds[-2:] == ["session.stop_performance_tracking", "session.ended"]
    times = [line["timestamp_ns"] for line in lines]
    assert times == sorted(times)
    by_request: dict[str, list[str]] = {}
    for line in lines[2:-2]:
        by_request.setdefault(line["sample_uuid"], []).append(line["event_type"])
    assert sorted(by_request.values()) == [
        ["sample.issued", "sample.recv_first", "sample.recv_non_first", "sample.complete"],
        ["sample.issued", "sample.recv_first", "sample.recv_non_first",
         "sample.recv_non_first", "sample.complete"]]
    # The first sent is numbered first, whatever its sample.
    assert lines[2]["sample_uuid"] == f"{0:08x}{3:024x}"


def test_a_failed_request_is_an_error_event_with_its_kind_and_message():
    lines = event_lines([record(0, 0, [], error=True)])
    [error] = [line for line in lines if line["event_type"] == "error.generic"]
    assert error["data"] == ["ErrorData", "http_status", "HTTP 500: engine dead"]
    [complete] = [line for line in lines if line["event_type"] == "sample.complete"]
    assert "finish_reason" not in complete
    assert event_lines([]) == []


def test_a_point_cut_under_its_floor_says_so_and_offline_is_its_own_command():
    cut = benchmark_config("c0016", {"type": "concurrency", "target_concurrency": 16},
                           (1_200_000, 60_000), 512, {"scheduler_random_seed": 1},
                           ["http://127.0.0.1:8000"], offline=False)
    runtime = cut["settings"]["runtime"]
    assert (runtime["min_duration_ms"], runtime["max_duration_ms"]) == (1_200_000, 60_000)
    assert runtime["n_samples_to_issue"] == 512 and cut["type"] == "online"
    full = benchmark_config("offline", {"type": "max_throughput"}, (600_000, 600_000), 13_368,
                            {}, ["http://127.0.0.1:8000"], offline=True)
    assert "max_duration_ms" not in full["settings"]["runtime"] and full["type"] == "offline"
