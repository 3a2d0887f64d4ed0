"""Which streamed events carry tokens, and what a stream accumulates (vLLM 0.32's dialect)."""

import json

import pytest

from client_sut.records import TokenIdSource
from client_sut.stream import Api, GenerationParams, StreamAccumulator, _StreamError, request_body


def event(**fields) -> bytes:
    return json.dumps(fields).encode()


def completion(text, ids=None, finish=None):
    choice = {"index": 0, "text": text, "finish_reason": finish}
    if ids is not None:
        choice["token_ids"] = ids
    return event(object="text_completion", choices=[choice])


def chat(delta, ids=None, finish=None):
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    if ids is not None:
        choice["token_ids"] = ids
    return event(object="chat.completion.chunk", choices=[choice])


USAGE = event(choices=[], usage={"prompt_tokens": 9, "completion_tokens": 3,
                                 "total_tokens": 12})


def run(events):
    acc, firsts = StreamAccumulator(), []
    for t, payload in enumerate(events):
        acc.add_event(t * 10, payload, lambda ids, text: firsts.append((ids, text)))
    return acc, firsts


def test_completion_stream_counts_ids_and_usage():
    acc, firsts = run([completion("a", [5], None), completion(" b", [6, 7], "length"), USAGE,
                       b"[DONE]"])
    assert list(acc.token_ids) == [5, 6, 7]
    assert list(acc.event_tokens) == [1, 2, 0]  # the usage-only chunk carries no token
    assert list(acc.event_ns) == [0, 10, 20]
    assert acc.usage_tokens == 3 and acc.finish_reason == "length" and acc.done
    assert firsts == [([5], "a")]
    assert acc.id_source() is TokenIdSource.SERVER


def test_role_only_chat_chunk_is_not_the_first_token():
    acc, firsts = run([chat({"role": "assistant", "content": ""}),
                       chat({"content": "Hi"}, [42]), USAGE, b"[DONE]"])
    assert list(acc.event_tokens) == [0, 1, 0]
    assert firsts == [([42], "Hi")]


def test_empty_text_chunk_is_not_a_token():
    acc, firsts = run([completion(""), completion("x", [3])])
    assert list(acc.event_tokens) == [0, 1]
    assert firsts == [([3], "x")]


def test_text_only_server_falls_back_and_says_so():
    acc, firsts = run([completion("Hello"), completion(" world"), USAGE, b"[DONE]"])
    assert list(acc.event_tokens) == [1, 1, 0]
    assert firsts == [(None, "Hello")]
    assert acc.id_source() is TokenIdSource.RETOKENIZED
    assert acc.usage_tokens == 3  # the count still comes from the server


def test_error_object_in_stream_is_a_server_error():
    with pytest.raises(_StreamError, match="boom"):
        run([event(error={"message": "boom", "code": 500})])


def test_malformed_json_raises_decode_error():
    import msgspec
    with pytest.raises(msgspec.DecodeError):
        run([b"{not json"])


def test_completion_body_sends_token_ids_and_mlperf_parameters():
    body = json.loads(request_body(Api.COMPLETIONS, "m", GenerationParams(),
                                   prompt_ids=(1, 2, 3), prompt_text="ignored"))
    assert body["prompt"] == [1, 2, 3]
    assert (body["temperature"], body["top_p"], body["top_k"], body["seed"]) == (0.0, 1.0, 1, 42)
    assert (body["max_tokens"], body["min_tokens"]) == (128, 1)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["return_token_ids"] is True


def test_chat_body_sends_the_prompt_as_a_user_message():
    body = json.loads(request_body(Api.CHAT, "m", GenerationParams(), prompt_ids=None,
                                   prompt_text="Summarize"))
    assert body["messages"] == [{"role": "user", "content": "Summarize"}]
    assert "prompt" not in body
