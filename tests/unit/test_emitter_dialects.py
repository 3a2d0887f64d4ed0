"""The emitter's dialects are one table: each row says what its server refuses and how it
frames a stream (where each keeps its health: tests/integration/test_dialects.py asks it)."""

from __future__ import annotations

import json

from client_sut.servers.emitter_dialects import DialectStream, refusal


def test_refusals_follow_the_rows():
    assert refusal("trtllm", "completions", {"prompt": "x", "return_token_ids": True}).status == 400
    assert refusal("openai", "completions", {"prompt": "x", "top_k": 1}).status == 400
    assert refusal("tgi", "completions", {"prompt": [1, 2]}).status == 422
    assert refusal("tgi", "completions", {"prompt": ["a", "b"]}) is None
    assert refusal("ollama", "completions", {"prompt": [1, 2]}).status == 400
    assert refusal("sglang", "completions", {"prompt": [1, 2], "return_token_ids": True}) is None


def events(blob: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in blob.decode().split("\n\n")
            if line.startswith("data: {")]


def test_streams_follow_the_rows():
    request = {"prompt": "x", "stream_options": {"include_usage": True}}
    tgi = DialectStream("tgi", "completions", "id-1", "m", request, [5, 6], 1, 3)
    assert tgi.before_first_token() == b":\n\n"
    first, last = events(tgi.token_event(0))[0], events(tgi.token_event(1))[0]
    assert first["id"] == "" and first["choices"][0]["finish_reason"] == ""
    assert last["usage"]["completion_tokens"] == 2  # on the finish chunk
    assert tgi.tail() == b"data: [DONE]\n\n"
    sglang = DialectStream("sglang", "completions", "id-2", "m",
                           {**request, "return_token_ids": True}, [5, 6], 1, 3)
    assert events(sglang.token_event(0))[0]["choices"][0]["token_ids"] == [5]
    assert events(sglang.tail())[0]["usage"]["completion_tokens"] == 2
