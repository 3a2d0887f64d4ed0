"""Which streamed events carry tokens, and what a stream accumulates (vLLM 0.32's dialect)."""

import json

import pytest

from client_sut.measure.stream import StreamAccumulator, _StreamError
from client_sut.measure.timeouts import Watched
from client_sut.records import TokenIdSource
from client_sut.request import Api, GenerationParams, request_body


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


def accumulator():
    firsts = []
    return StreamAccumulator(lambda ids, text: firsts.append((ids, text)), Watched(None, 0)), firsts


def run(events):
    """Each event as its own body piece, the way uvicorn sends them; then the stream ends."""
    acc, firsts = accumulator()
    acc.on_headers(0, 200, "text/event-stream")
    for t, payload in enumerate(events):
        acc.on_body(t * 10, b"data: " + payload + b"\n\n")
    acc.read_stored()
    return acc, firsts


def vllm_chunk(ids, finish=None, response_id="cmpl-1"):
    """Byte for byte what vLLM 0.32 sends mid-stream: compact JSON, the ids last."""
    finish_json = json.dumps(finish)
    return (f'{{"id":"{response_id}","object":"text_completion","created":1,"model":"m",'
            f'"choices":[{{"index":0,"text":" w","logprobs":null,"finish_reason":{finish_json},'
            f'"stop_reason":null,"prompt_token_ids":null,'
            f'"token_ids":{json.dumps(ids, separators=(",", ":"))}}}]}}').encode()


# Captured from vLLM 0.32.0 on CPU (return_token_ids), byte for byte.
VLLM_COMPLETION_MIDDLE = (
    b'data: {"id":"cmpl-902ed5f0ba4c51e2","object":"text_completion","created":1795475843,'
    b'"model":"/work/main/work/demo-model","choices":[{"index":0,"text":" provided",'
    b'"logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,'
    b'"token_ids":[3084]}]}\n\n')
VLLM_CHAT_MIDDLE = (
    b'data: {"id":"chatcmpl-8762bb1acc6c57e3","object":"chat.completion.chunk",'
    b'"created":1795475843,"model":"/work/main/work/demo-model","choices":[{"index":0,'
    b'"delta":{"content":"\\":"},"logprobs":null,"finish_reason":null,"token_ids":[1313]}]}\n\n')


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


def test_compact_chunks_keep_every_id_in_order_and_the_finish_reason():
    events = [vllm_chunk([11]), vllm_chunk([12, 13]), vllm_chunk([14]),
              vllm_chunk([15], "length"), USAGE, vllm_chunk([16]), b"[DONE]"]
    acc, firsts = run(events)
    assert list(acc.token_ids) == [11, 12, 13, 14, 15, 16]
    assert list(acc.event_tokens) == [1, 2, 1, 1, 0, 1]
    assert acc.finish_reason == "length" and acc.usage_tokens == 3 and acc.done
    assert firsts == [([11], " w")] and acc.response_id == "cmpl-1"


def test_reads_after_the_first_token_are_stored_and_read_when_the_stream_ends():
    acc, _ = run([vllm_chunk([1])])
    acc.on_body(5, b"data: " + vllm_chunk([2])[:-1] + b',"usage":{"completion_tokens":9}}\n\n')
    acc.on_body(6, b"data: " + vllm_chunk([3])[:-1] + b',"error":{"message":"boom"}}\n\n')
    assert len(acc.stored) == 2 and list(acc.token_ids) == [1]  # nothing parsed per read
    with pytest.raises(_StreamError, match="boom"):  # the error is seen at the end, in order
        acc.read_stored()
    assert acc.usage_tokens == 9 and list(acc.token_ids) == [1, 2]
    assert list(acc.event_ns) == [0, 5]


@pytest.mark.parametrize("pieces", [
    [b"data: A\n\n", b"data: B\n\n", b"data: [DONE]\n\n"],  # one event per body piece
    [b"data: A\n\ndata: B\n\ndata: [DONE]\n\n"],  # all in one read
    [b"data: A\n", b"\ndata: B\n\nda", b"ta: [DONE]\n\n"],  # split anywhere
    [b"data: A\r\n\r\ndata: B\r\n", b"\r\ndata: [DONE]\r\n\r\n"],  # CRLF framing
])
def test_body_pieces_are_framed_into_events_stamped_with_their_read(pieces):
    acc, _ = accumulator()
    acc.on_headers(0, 200, "text/event-stream")
    payloads = {b"A": vllm_chunk([1]), b"B": vllm_chunk([2], "stop")}
    for t, piece in enumerate(pieces, start=1):
        for name, payload in payloads.items():
            piece = piece.replace(b"data: " + name, b"data: " + payload)
        acc.on_body(t * 100, piece)
    acc.read_stored()
    assert acc.done and list(acc.token_ids) == [1, 2] and acc.finish_reason == "stop"
    assert len(acc.event_ns) == 2 and acc.first_byte_ns == 0


def test_error_status_keeps_the_start_of_the_body_and_other_types_are_refused():
    acc, _ = accumulator()
    acc.on_headers(1, 503, "application/json")
    acc.on_body(2, b'{"error": "overloaded"}')
    assert acc.status == 503 and acc.error_body == b'{"error": "overloaded"}'
    with pytest.raises(_StreamError, match="text/html"):
        accumulator()[0].on_headers(1, 200, "text/html")


@pytest.mark.parametrize("middle", [VLLM_COMPLETION_MIDDLE, VLLM_CHAT_MIDDLE])
def test_vllms_own_middle_chunks_are_read_in_bulk(middle):
    acc, _ = run([vllm_chunk([7])])
    acc.on_body(50, middle)
    acc.on_body(60, middle.replace(b'"token_ids":[', b'"token_ids":[8,'))
    assert acc.read_stored() == 2
    token = int(middle.rsplit(b"[", 1)[1].split(b"]")[0])
    assert list(acc.token_ids) == [7, token, 8, token]
    assert list(acc.event_tokens) == [1, 1, 2] and list(acc.event_ns) == [0, 50, 60]


def test_tgis_empty_finish_reason_is_none_until_the_last_chunk():
    acc, _ = run([completion(" a", finish=""), completion(" b", finish=""),
                  completion("", finish="length"), b"[DONE]"])
    assert acc.finish_reason == "length"
    acc, _ = run([completion(" a", finish=""), b"[DONE]"])
    assert acc.finish_reason is None


def test_the_last_usage_above_zero_counts_as_ollama_sends_zeros_on_every_chunk():
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    events = [event(choices=[{"index": 0, "text": t, "finish_reason": None}], usage=zero)
              for t in ("a", "b")]
    acc, _ = run([*events, USAGE, event(choices=[], usage=zero), b"[DONE]"])
    assert acc.usage_tokens == 3


def test_usage_inline_on_the_finish_chunk_counts_as_tgi_and_llama_cpp_send_it():
    last = event(choices=[{"index": 0, "text": " c", "finish_reason": "length"}],
                 usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})
    acc, _ = run([completion(" a"), completion(" b"), last, b"[DONE]"])
    assert acc.usage_tokens == 3 and list(acc.event_tokens) == [1, 1, 1]


def llama_cpp(text, ids, finish=None, usage=None, generated=None):
    """llama-server's completion chunk: ids only as logprobs entries (asked with n_probs), and
    its running count of generated tokens (asked with timings_per_token)."""
    content = [{"id": i, "token": "x", "bytes": [120], "logprob": 0.0, "top_logprobs": []}
               for i in ids]
    choice = {"text": text, "index": 0, "logprobs": {"content": content} if ids else None,
              "finish_reason": finish}
    timings = {"timings": {"predicted_n": generated, "predicted_ms": 1.0}} if generated else {}
    return event(object="text_completion", choices=[choice], **({"usage": usage} if usage else {}),
                 **timings)


def test_llama_cpps_ids_are_its_own_while_they_are_all_there():
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    acc, _ = run([llama_cpp(" a", [5]), llama_cpp(" b", [6], "length", usage), b"[DONE]"])
    assert acc.id_source() is TokenIdSource.SERVER and list(acc.token_ids) == [5, 6]


def test_llama_cpps_ids_that_fall_short_of_its_count_give_way_to_the_whole_text():
    # A token ending inside a UTF-8 character gets no chunk of its own: its bytes come in the
    # next chunk's text, beside only that token's id. The text is whole; the ids are not.
    usage = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    acc, _ = run([llama_cpp(" a", [5], generated=1),
                  llama_cpp(" é", [7], "length", usage, generated=3), b"[DONE]"])
    assert acc.usage_tokens == 3 and list(acc.token_ids) == [5, 7]
    assert acc.id_source() is TokenIdSource.IDS_MISSING
    assert "".join(acc.texts) == " a é"
    # What recovers the id it left out: each chunk's text, ids and running count, in order.
    assert acc.pieces == [(" a", (5,), 1), (" é", (7,), 3)]


@pytest.mark.parametrize("error, message", [
    ({"message": "boom", "type": "BadRequestError", "param": None, "code": 400},
     "boom (code 400)"),  # vLLM, SGLang
    ({"code": 500, "message": "boom", "type": "server_error"}, "boom (code 500)"),  # llama.cpp
    ({"message": "boom", "http_status_code": 422}, "boom (code 422)"),  # TGI
    ("boom: 1 validation error", "boom: 1 validation error"),  # TensorRT-LLM
])
def test_every_error_shape_in_a_200_stream_fails_the_request_with_the_servers_words(error,
                                                                                   message):
    with pytest.raises(_StreamError) as raised:
        run([completion(" a"), event(error=error)])  # after a token, with no [DONE] after it
    assert str(raised.value) == f"server error in stream: {message}"


def test_comments_crlf_and_a_trailing_space_are_read_as_the_sse_spec_says():
    acc, _ = accumulator()
    acc.on_headers(0, 200, "text/event-stream")
    for t, piece in enumerate([b": ping\r\n\r\n", b"data:" + completion(" a") + b" \r\n\r\n",
                               b":\n\n", b"data: " + completion(" b") + b" \n\n",
                               b"data: " + USAGE + b"\n\ndata: [DONE]\n\n"]):
        acc.on_body(t * 10, piece)
    acc.read_stored()
    assert list(acc.event_ns) == [10, 30, 40] and list(acc.event_tokens) == [1, 1, 0]
    assert acc.done and acc.usage_tokens == 3
