"""The dialect probe's own decisions, apart from the servers (each server's answers to it are
held by tests/integration/test_dialects.py): what one probe answer teaches, and one request
shape for a run's endpoints."""

from __future__ import annotations

import pytest

from client_sut.dialect import Capabilities, Dialect
from client_sut.errors import UsageError
from client_sut.preflight.dialect_probe import _chunks, _Unanswered, one_request_shape

VLLM_ANSWER = ('data: {"id":"cmpl-1","choices":[{"text":"The","token_ids":[791]}]}\n\n'
               'data: {"id":"cmpl-1","choices":[{"text":" town","token_ids":[6424]}]}\n\n'
               'data: {"id":"cmpl-1","choices":[],"usage":{"completion_tokens":2}}\n\n'
               "data: [DONE]")


def test_a_probe_answer_is_its_json_events_without_the_end_marker():
    chunks = _chunks(VLLM_ANSWER)
    assert [c["choices"][0]["token_ids"] for c in chunks[:2]] == [[791], [6424]]
    assert chunks[-1]["usage"] == {"completion_tokens": 2}


@pytest.mark.parametrize("answer, why", [
    ("data: {not json\n\n", "an event that is not JSON"),
    ('data: {"error": {"message": "engine dead"}}\n\n', "was an error event"),
    ("data: [DONE]", "held no event"),
])
def test_an_answer_that_teaches_nothing_is_said_so(answer, why):
    with pytest.raises(_Unanswered, match=why):
        _chunks(answer)


def dialect(name: str, **capabilities) -> Dialect:
    return Dialect(name, Capabilities(**capabilities))


def test_replicas_of_one_kind_share_one_request_shape():
    shared = one_request_shape({"http://127.0.0.1:8000": dialect("vllm"),
                                "http://127.0.0.1:8001": dialect("vllm")})
    assert shared == Capabilities()


def test_servers_that_take_different_requests_are_refused_in_one_run():
    with pytest.raises(UsageError, match="http://127.0.0.1:8001: tgi.*run of its own"):
        one_request_shape({"http://127.0.0.1:8000": dialect("vllm"),
                           "http://127.0.0.1:8001": dialect("tgi", token_prompt=False,
                                                            refused=("return_token_ids",))})
