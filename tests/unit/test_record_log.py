"""The record log: every record on disk as it completes, only the newest in memory."""

from __future__ import annotations

from array import array

from client_sut.measure.record_log import PARTIAL_NAME, RECENT, RecordLog
from client_sut.records import ErrorKind, RequestError, RequestRecord, TokenIdSource


def record(index: int, error: RequestError | None = None) -> RequestRecord:
    return RequestRecord(
        sample_index=index, endpoint="http://a", issue_ns=index, send_ns=index + 1,
        first_byte_ns=index + 2, end_ns=index + 5, event_ns=array("q", [index + 3, index + 4]),
        event_tokens=array("i", [1, 2]), token_ids=array("i", [7, 8, 9]),
        token_id_source=TokenIdSource.SERVER, server_completion_tokens=3, finish_reason="length",
        http_status=200, error=error)


def test_every_record_is_read_back_and_only_the_newest_are_held(tmp_path):
    log = RecordLog(tmp_path)
    heard = []
    log.listeners.append(heard.append)
    for index in range(RECENT + 10):
        log.add(record(index, RequestError(ErrorKind.TIMEOUT, "late") if index == 0 else None))
    assert log.count == RECENT + 10 and len(heard) == RECENT + 10
    assert [r.sample_index for r in log.recent] == list(range(10, RECENT + 10))
    assert log.ok_output_tokens == 3 * (RECENT + 9)  # the failed one's tokens do not count
    back = log.finish(tmp_path / "requests.jsonl")
    assert [r.sample_index for r in back] == list(range(RECENT + 10))  # in send order
    assert back[5].event_ns == array("q", [8, 9]) and back[5].output_tokens == 3
    assert back[0].error == RequestError(ErrorKind.TIMEOUT, "late")
    assert not (tmp_path / PARTIAL_NAME).exists()
    lines = (tmp_path / "requests.jsonl").read_bytes().splitlines()
    assert len(lines) == RECENT + 10 and b'"sample_index":5,' in lines[5]
