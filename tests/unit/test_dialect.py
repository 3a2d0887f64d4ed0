"""What a server's refusals and its stream say of its dialect (the rules; the probe's I/O is
tested against the emitter's dialects in tests/integration/test_dialects.py)."""

import json

import pytest

from client_sut.dialect import (
    KNOWN,
    USAGE_CHUNK,
    USAGE_EVERY_CHUNK,
    USAGE_INLINE,
    USAGE_NONE,
    Capabilities,
    Dialect,
    SelfDescription,
    counted_prompt_tokens,
    dialect_notes,
    dialect_warnings,
    family,
    guess_family,
    refusal_message,
    refused_field,
    refuses_token_prompt,
    stream_capabilities,
)
from client_sut.request import Api, GenerationParams, request_body

TRTLLM = json.dumps({"error": "1 validation error for CompletionRequest\nreturn_token_ids\n  "
                              "Extra inputs are not permitted [type=extra_forbidden]"})
OPENAI = json.dumps({"error": {"message": "Unrecognized request argument supplied: top_k",
                               "type": "invalid_request_error", "param": None, "code": None}})
TGI = ("Failed to deserialize the JSON body into the target type: prompt: data did not match "
       "any variant of untagged enum Prompt")
OLLAMA = json.dumps({"error": {"message": "json: cannot unmarshal array into Go struct field "
                                          "CompletionRequest.prompt of type string"}})
SENT = ("return_token_ids", "stream_options", "min_tokens", "top_k", "seed")


@pytest.mark.parametrize("body, field", [(TRTLLM, "return_token_ids"), (OPENAI, "top_k"),
                                         (TGI, None), (OLLAMA, None)])
def test_the_field_a_refusal_names(body, field):
    assert refused_field(refusal_message(body), SENT) == field


def test_a_field_named_inside_another_word_is_not_refused():
    assert refused_field("max_top_k_tokens exceeds the limit", SENT) is None
    assert refused_field("prompt is too long for max_model_len", SENT) is None


@pytest.mark.parametrize("body, refuses", [(TGI, True), (OLLAMA, True), (OPENAI, False),
                                           (TRTLLM, False)])
def test_a_refusal_of_a_prompt_of_ids(body, refuses):
    assert refuses_token_prompt(refusal_message(body)) is refuses


def test_refusal_messages_of_every_shape():
    assert refusal_message(OPENAI) == "Unrecognized request argument supplied: top_k"
    assert refusal_message(TRTLLM).startswith("1 validation error")
    assert refusal_message(json.dumps({"detail": [{"loc": ["body", "prompt"], "msg": "bad"}]})) \
        == "body.prompt: bad"
    assert refusal_message("plain words") == "plain words"


@pytest.mark.parametrize("refusals, family", [((TRTLLM,), "trtllm"), ((OPENAI,), "openai"),
                                              ((TGI,), "tgi"), ((OLLAMA,), "ollama"),
                                              ((), None)])
def test_the_family_refusals_point_to(refusals, family):
    assert guess_family(tuple(refusal_message(r) for r in refusals)) == family


def chunk(text=None, ids=None, finish=None, usage=None, choices=True, delta=None):
    choice = {"index": 0, "finish_reason": finish}
    if delta is not None:
        choice["delta"] = delta
    else:
        choice["text"] = text
    if ids is not None:
        choice["token_ids"] = ids
    out = {"choices": [choice] if choices else []}
    if usage is not None:
        out["usage"] = {"completion_tokens": usage}
    return out


def test_where_a_stream_puts_its_ids_and_usage():
    vllm = [chunk(" a", [5]), chunk(" b", [6], "length"), chunk(choices=False, usage=2)]
    assert stream_capabilities(vllm) == ("streamed", USAGE_CHUNK, False)
    tgi = [chunk(" a", finish=""), chunk(" b", finish="length", usage=2)]
    assert stream_capabilities(tgi) == ("none", USAGE_INLINE, False)
    ollama = [chunk(" a", usage=0), chunk("", finish="length", usage=0),
              chunk(choices=False, usage=2)]
    assert stream_capabilities(ollama) == ("none", USAGE_EVERY_CHUNK, False)
    chat = [chunk(delta={"role": "assistant", "content": None}), chunk(delta={"content": "a"})]
    assert stream_capabilities(chat) == ("none", USAGE_NONE, True)


def test_notes_name_every_setting_not_honoured_and_a_prompt_sent_as_text():
    dialects = {"http://a": Dialect("openai", KNOWN["openai"]),
                "http://b": Dialect("openai", KNOWN["openai"]),
                "http://c": Dialect("tgi", KNOWN["tgi"])}
    notes = dialect_notes(dialects, token_prompt_asked=True)
    assert notes == [
        "http://a, http://b (openai) refuses MLPerf's min_tokens 1: left out of every request",
        "http://a, http://b (openai) refuses MLPerf's top_k 1 (greedy): left out of every "
        "request",
        "http://c (tgi) ignores MLPerf's min_tokens 1",
        "http://c (tgi) ignores MLPerf's top_k 1 (greedy)",
        "http://c (tgi) refuses a prompt of token ids: each prompt is sent as its text, which "
        "the server tokenizes itself"]
    assert dialect_notes({"http://v": Dialect("vllm", Capabilities())}, True) == []


def test_a_body_leaves_out_what_the_server_refuses():
    body = json.loads(request_body(Api.COMPLETIONS, "m", GenerationParams(), prompt_ids=(1, 2),
                                   prompt_text="x", omit=("return_token_ids", "top_k")))
    assert "return_token_ids" not in body and "top_k" not in body
    assert body["prompt"] == [1, 2] and body["min_tokens"] == 1


@pytest.mark.parametrize("description, kind", [
    (SelfDescription(owned_by="vllm", server="uvicorn"), "vllm"),
    (SelfDescription(owned_by="sglang"), "sglang"),
    (SelfDescription(owned_by="tensorrt_llm"), "trtllm"),
    (SelfDescription(server="llama.cpp"), "llamacpp"),
    (SelfDescription(owned_by="me", model_keys=("id", "object", "owned_by", "permissions")),
     "llama-cpp-python"),
    (SelfDescription(owned_by="openai", header_names=("content-type", "x-litellm-version")),
     "litellm"),
    (SelfDescription(owned_by="library"), None),
    (SelfDescription(owned_by="system"), "openai"),
    (SelfDescription(owned_by="system", nim_metadata=True), "nim"),  # NIM's are "system" too
])
def test_the_kind_a_server_says_it_is(description, kind):
    assert family(description) == kind


def test_systems_that_cannot_be_benchmarked_honestly_are_warned_of_not_refused():
    assert "one request at a time" in dialect_warnings("llama-cpp-python", None, None)[0]
    assert "chunk timing" in dialect_warnings("litellm", None, None)[0]
    assert "cannot be pinned" in dialect_warnings("openai", None, None)[0]
    assert dialect_warnings("vllm", None, None) == ()


def test_a_prompt_counted_otherwise_than_sent_is_named_beyond_one_bos():
    assert dialect_warnings("vllm", 180, 181) == ()  # a BOS added to a text prompt
    [warning] = dialect_warnings("ollama", 180, 203)  # Ollama's chat template around it
    assert warning.startswith("the server counted 203 prompt tokens for a prompt of 180")
    assert counted_prompt_tokens([{"usage": {"prompt_tokens": 0}},
                                  {"usage": {"prompt_tokens": 203, "completion_tokens": 2}},
                                  {"choices": []}]) == 203
