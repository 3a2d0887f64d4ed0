"""The emitter speaking other servers' dialects (`--dialect`), each as docs/servers.md
reads it from the server's source, for tests of what cannot run here: what each refuses of the
client's request, and how each frames its stream. Each dialect is one row of `SPEECH`, data the
one generic stream below follows (adding a dialect is adding a row); where each keeps its metrics
and health comes from the client's own table (dialect.SERVER_PATHS). vLLM's own dialect stays in
`emitter.py`, on its fast byte templates; these are built with json.dumps, one event at a time.

- sglang: as vLLM (ids with return_token_ids, a usage chunk of its own); chat starts with a
  role chunk.
- trtllm: any field it does not know is HTTP 400 `{"error": "<validation text>"}`; ids only
  with `detokenize: false` (then no text); a chunk with empty text may come before the first
  token (it emits a chunk per engine output, with no empty-text filter); chat's role chunk is
  written with a trailing space.
- tgi: a prompt of ids is HTTP 422; no ids; `id: ""` and `finish_reason: ""` until the last
  chunk, which carries the usage; a keep-alive comment before the first token.
- openai: `top_k`, `min_tokens`, `ignore_eos` and `return_token_ids` are HTTP 400
  "Unrecognized request argument supplied"; no ids; `usage: null` until a usage chunk.
- ollama: a prompt that is not a string is HTTP 400; no ids; every chunk carries a zero usage,
  the last content chunk has no text, then a usage chunk with the real count.
- nim (NVIDIA NIM for LLMs 2.x): vLLM inside, so vLLM's stream; says what it is at
  `/v1/metadata`, its model is `owned_by: system` (as OpenAI's are), its metrics at
  `/v1/metrics`, its health at `/v1/health/ready` and no `/health`.
- llamacpp (llama-server): ids only as `logprobs.content[].id`, asked with `n_probs`; usage on
  the finish chunk; its context per request at `/props`, not in `/v1/models`; `min_tokens`
  silently ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from client_sut.dialect import DEFAULT_PATHS, SERVER_PATHS


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Speech:
    """How one kind of server answers, as data: what it refuses, how it frames a stream."""

    owned_by: str  # what its /v1/models says of its model
    vllm_stream: bool = False  # vLLM inside: streamed by the emitter's own vLLM templates
    # Where else it says things: its context at /props (not in /v1/models), JSON iteration
    # stats at /metrics, what it is at /v1/metadata.
    context_at_props: bool = False
    json_stats_at_metrics: bool = False
    metadata: bool = False
    # Refusals: any field outside `allowed_fields` (pydantic's extra="forbid"), each of
    # `refused_fields`, and (completions) a prompt that is not text.
    allowed_fields: frozenset[str] | None = None
    refused_fields: tuple[str, ...] = ()
    prompt_not_text: Refusal | None = None
    prompt_ids_list_as_text: bool = False  # a list of strings is text too (TGI's untagged enum)
    # Ids: in `token_ids` when the request has `ids_field` set to `ids_value`; or as
    # `logprobs.content[].id` when it asks `n_probs`; text unless ids replace it.
    ids_field: str | None = None
    ids_value: bool = True
    ids_replace_text: bool = False
    logprob_ids: bool = False
    # Framing
    empty_id: bool = False  # `id: ""` on every chunk
    unfinished: str | None = None  # finish_reason before the last chunk
    keepalive_first: bool = False  # a keep-alive comment before the first token
    chat_role_chunk: str | None = None  # a role-only chunk opens chat (its trailing text)
    chat_delta_role: bool = False  # every chat delta names the role
    empty_first_chunk: bool = False  # an empty completion chunk before the first token
    # Usage: asked by stream_options.include_usage (or by stream_options at all); `null` on
    # every chunk before it; a zero usage on every chunk; on the finish chunk instead of a
    # chunk of its own; the last text chunk followed by an empty one with the finish reason.
    usage_on_any_stream_options: bool = False
    usage_null_before: bool = False
    zero_usage_each_chunk: bool = False
    usage_on_finish_chunk: bool = False
    finish_on_empty_chunk: bool = False


def _pydantic_extra(names: list[str]) -> bytes:
    text = (f"{len(names)} validation error for CompletionRequest\n"
            + "".join(f"{name}\n  Extra inputs are not permitted [type=extra_forbidden]\n"
                      for name in names))
    return json.dumps({"error": text}).encode()


def _openai_unrecognized(name: str) -> bytes:
    return json.dumps({"error": {"message": f"Unrecognized request argument supplied: {name}",
                                 "type": "invalid_request_error", "param": None,
                                 "code": None}}).encode()


# TensorRT-LLM's CompletionRequest and ChatCompletionRequest fields (extra="forbid"), as far as
# a client of ours could send them.
_TRTLLM_FIELDS = frozenset({
    "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "top_k", "min_tokens", "seed", "stream", "stream_options", "ignore_eos",
    "detokenize", "stop", "n", "logprobs", "echo", "presence_penalty", "frequency_penalty",
    "user", "min_p"})

SPEECH = {
    "vllm": Speech("client_sut", vllm_stream=True),
    "nim": Speech("system", vllm_stream=True, metadata=True),
    "sglang": Speech("sglang", ids_field="return_token_ids", chat_role_chunk=""),
    "trtllm": Speech("tensorrt_llm", allowed_fields=_TRTLLM_FIELDS, ids_field="detokenize",
                     ids_value=False, ids_replace_text=True, chat_role_chunk=" ",
                     empty_first_chunk=True, usage_on_any_stream_options=True,
                     json_stats_at_metrics=True),
    "tgi": Speech("tgi", prompt_not_text=Refusal(
        422, b"Failed to deserialize the JSON body into the target type: prompt: data did not "
             b"match any variant of untagged enum Prompt", "text/plain; charset=utf-8"),
        prompt_ids_list_as_text=True, empty_id=True, unfinished="", keepalive_first=True,
        chat_delta_role=True, usage_on_finish_chunk=True),
    "openai": Speech("system", refused_fields=("top_k", "min_tokens", "ignore_eos",
                                               "return_token_ids"), usage_null_before=True),
    "ollama": Speech("library", prompt_not_text=Refusal(400, json.dumps({"error": {
        "message": "json: cannot unmarshal array into Go struct field CompletionRequest.prompt "
                   "of type string", "type": "invalid_request_error"}}).encode()),
        zero_usage_each_chunk=True, finish_on_empty_chunk=True),
    "llamacpp": Speech("llamacpp", logprob_ids=True, chat_role_chunk="",
                       usage_on_finish_chunk=True, context_at_props=True),
}
DIALECTS = tuple(SPEECH)
VLLM_STREAM = tuple(name for name, speech in SPEECH.items() if speech.vllm_stream)
# Where each keeps its Prometheus exposition and its health, as the client looks for them.
METRICS_PATHS = {name: None if SERVER_PATHS.get(name, DEFAULT_PATHS).metrics is None
                 else SERVER_PATHS.get(name, DEFAULT_PATHS).metrics.encode() for name in SPEECH}
# (A kind whose health is its model list has no health path of its own.)
HEALTH_PATHS = {name: (SERVER_PATHS.get(name, DEFAULT_PATHS).health or "/health").encode()
                for name in SPEECH
                if SERVER_PATHS.get(name, DEFAULT_PATHS).health != "/v1/models"}


def refusal(dialect: str, kind: str, request: dict) -> Refusal | None:
    """What the server answers a request it will not take, or None."""
    speech = SPEECH[dialect]
    if speech.allowed_fields is not None:
        extra = sorted(set(request) - speech.allowed_fields)
        if extra:
            return Refusal(400, _pydantic_extra(extra))
    for name in speech.refused_fields:
        if name in request:
            return Refusal(400, _openai_unrecognized(name))
    prompt = request.get("prompt")
    if speech.prompt_not_text is not None and kind == "completions" and not (
            isinstance(prompt, str) or speech.prompt_ids_list_as_text and isinstance(prompt, list)
            and all(isinstance(p, str) for p in prompt)):
        return speech.prompt_not_text
    return None


class DialectStream:
    """One response's events in a dialect: what comes before the first token, each token event,
    and what ends the stream. Each is the bytes of whole SSE events."""

    def __init__(self, dialect: str, kind: str, response_id: str, model: str, request: dict,
                 ids: list[int], step: int, prompt_tokens: int | None) -> None:
        speech = self.speech = SPEECH[dialect]
        self.kind, self.ids, self.step = kind, ids, step
        self.events = -(-len(ids) // step)
        self.prompt_tokens = prompt_tokens
        options = request.get("stream_options") or {}
        self.include_usage = bool(options.get("include_usage")) or (
            speech.usage_on_any_stream_options and "stream_options" in request)
        self.with_ids = (speech.ids_field is not None
                         and request.get(speech.ids_field) is speech.ids_value)
        self.logprob_ids = speech.logprob_ids and (request.get("n_probs") or 0) >= 1
        self.text = not (speech.ids_replace_text and self.with_ids)
        self.head = {"id": "" if speech.empty_id else response_id,
                     "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
                     "created": 0, "model": model}

    def _event(self, choices: list[dict], usage: dict | None = None, trailing: str = "") -> bytes:
        chunk = {**self.head, "choices": choices}
        if usage is not None or (self.speech.usage_null_before and self.include_usage):
            chunk["usage"] = usage
        return f"data: {json.dumps(chunk, separators=(',', ':'))}{trailing}\n\n".encode()

    def _usage(self, completion_tokens: int) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": (self.prompt_tokens or 0) + completion_tokens}

    def _choice(self, text: str, finish: str | None, ids: list[int] | None) -> dict:
        if self.kind == "chat":
            delta = ({"role": "assistant", "content": text} if self.speech.chat_delta_role
                     else {"content": text})
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish}
        if ids is not None and self.with_ids:
            choice["token_ids"] = ids
        if ids is not None and self.logprob_ids:
            choice["logprobs"] = {"content": [
                {"id": i, "token": f" t{i}", "bytes": list(f" t{i}".encode()), "logprob": 0.0,
                 "top_logprobs": []} for i in ids]}
        return choice

    def before_first_token(self) -> bytes:
        speech = self.speech
        out = b":\n\n" if speech.keepalive_first else b""  # axum's keep-alive comment
        if self.kind == "chat" and speech.chat_role_chunk is not None:
            role = {"index": 0, "delta": {"role": "assistant", "content": None},
                    "finish_reason": None}
            out += self._event([role], trailing=speech.chat_role_chunk)
        elif speech.empty_first_chunk:  # an engine output that decoded to nothing yet
            out += self._event([self._choice("", None, [] if self.with_ids else None)])
        return out

    def token_event(self, n: int) -> bytes:
        speech = self.speech
        group = self.ids[n * self.step:(n + 1) * self.step]
        last = n == self.events - 1
        text = "".join(f" t{i}" for i in group) if self.text else ""
        finish = "length" if last else speech.unfinished
        usage = None
        if speech.zero_usage_each_chunk and self.include_usage:
            usage = self._usage(0)
        if speech.usage_on_finish_chunk and last:
            usage = self._usage(len(self.ids))
        if speech.finish_on_empty_chunk and last:  # the text, then an empty chunk with the finish
            return (self._event([self._choice(text, None, group)], usage)
                    + self._event([self._choice("", finish, None)], usage))
        return self._event([self._choice(text, finish, group)], usage)

    def tail(self) -> bytes:
        """The usage chunk where the dialect sends one on its own, and [DONE]."""
        out = b""
        if self.include_usage and not self.speech.usage_on_finish_chunk:
            out += self._event([], self._usage(len(self.ids)))
        return out + b"data: [DONE]\n\n"
