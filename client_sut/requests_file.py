"""requests.jsonl: one line per request, as it was measured, and back into records."""

from __future__ import annotations

from array import array
from pathlib import Path

import msgspec

from client_sut.records import ErrorKind, RequestError, RequestRecord, TokenIdSource


class _Error(msgspec.Struct):
    kind: str
    message: str


class _Line(msgspec.Struct, kw_only=True):
    """One line of requests.jsonl, field for field (its keys, in this order, are the contract:
    docs/running.md). Typed, so that writing and reading a line make no dict on the way; a key
    an older file lacks reads as none."""

    sample_index: int
    endpoint: str
    response_id: str | None = None
    issue_ns: int
    connect_ns: int | None = None
    send_ns: int
    first_byte_ns: int | None = None
    first_reported_ns: int | None = None
    end_ns: int
    event_ns: list[int]
    event_tokens: list[int]
    output_tokens: int
    server_completion_tokens: int | None = None
    streamed_tokens: int
    token_id_source: str
    finish_reason: str | None = None
    http_status: int | None = None
    error: _Error | None = None


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Line).decode


def _line(record: RequestRecord) -> _Line:
    error = record.error
    return _Line(
        sample_index=record.sample_index, endpoint=record.endpoint,
        response_id=record.response_id, issue_ns=record.issue_ns, connect_ns=record.connect_ns,
        send_ns=record.send_ns, first_byte_ns=record.first_byte_ns,
        first_reported_ns=record.first_reported_ns, end_ns=record.end_ns,
        event_ns=record.event_ns.tolist(), event_tokens=record.event_tokens.tolist(),
        output_tokens=record.output_tokens,
        server_completion_tokens=record.server_completion_tokens,
        streamed_tokens=record.streamed_tokens, token_id_source=record.token_id_source.value,
        finish_reason=record.finish_reason, http_status=record.http_status,
        error=None if error is None else _Error(error.kind.value, error.message))


def encoded_line(record: RequestRecord) -> bytes:
    return _encode(_line(record)) + b"\n"


def read_requests(path: Path) -> list[RequestRecord]:
    """requests.jsonl back into records (the inverse of `encoded_line`, but for the token ids,
    which it does not keep: placeholders of the right count stand in for them)."""
    with path.open("rb") as source:
        return [record_of(line) for line in source]


def record_of(line: bytes) -> RequestRecord:
    """One requests.jsonl line back into its record (token ids as placeholders)."""
    r = _decode(line)
    error = r.error
    return RequestRecord(
        sample_index=r.sample_index, endpoint=r.endpoint, issue_ns=r.issue_ns,
        send_ns=r.send_ns, first_byte_ns=r.first_byte_ns, end_ns=r.end_ns,
        event_ns=array("q", r.event_ns), event_tokens=array("i", r.event_tokens),
        token_ids=array("i", bytes(4 * r.output_tokens)),
        token_id_source=TokenIdSource(r.token_id_source),
        server_completion_tokens=r.server_completion_tokens,
        finish_reason=r.finish_reason, http_status=r.http_status,
        error=None if error is None else RequestError(ErrorKind(error.kind), error.message),
        response_id=r.response_id, first_reported_ns=r.first_reported_ns,
        connect_ns=r.connect_ns)
