"""The emitter speaking other servers' dialects (`--dialect`), each as docs/servers.md
reads it from the server's source, for tests of what cannot run here: what each refuses of the
client's request, and how each frames its stream. vLLM's own dialect stays in `emitter.py`, on
its fast byte templates; these are built with json.dumps, one event at a time.

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

DIALECTS = ("vllm", "sglang", "trtllm", "tgi", "openai", "ollama", "llamacpp", "nim")
VLLM_STREAM = ("vllm", "nim")  # streamed by the emitter's own vLLM templates
# Where each keeps its Prometheus exposition (Ollama and OpenAI have none) and its health.
METRICS_PATHS = {"trtllm": b"/prometheus/metrics", "nim": b"/v1/metrics", "ollama": None,
                 "openai": None}
HEALTH_PATHS = {"nim": b"/v1/health/ready"}
# What each says of itself in /v1/models (Ollama's "library" names no server: its refusals do).
OWNED_BY = {"sglang": "sglang", "trtllm": "tensorrt_llm", "tgi": "tgi", "openai": "system",
            "ollama": "library", "llamacpp": "llamacpp", "nim": "system"}

# TensorRT-LLM's CompletionRequest and ChatCompletionRequest fields (extra="forbid"), as far as
# a client of ours could send them.
_TRTLLM_FIELDS = {"model", "prompt", "messages", "max_tokens", "max_completion_tokens",
                  "temperature", "top_p", "top_k", "min_tokens", "seed", "stream",
                  "stream_options", "ignore_eos", "detokenize", "stop", "n", "logprobs", "echo",
                  "presence_penalty", "frequency_penalty", "user", "min_p"}
_OPENAI_REFUSED = ("top_k", "min_tokens", "ignore_eos", "return_token_ids")


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    body: bytes
    content_type: str = "application/json"


def refusal(dialect: str, kind: str, request: dict) -> Refusal | None:
    """What the server answers a request it will not take, or None."""
    prompt = request.get("prompt")
    if dialect == "trtllm":
        extra = sorted(set(request) - _TRTLLM_FIELDS)
        if extra:
            text = (f"{len(extra)} validation error for CompletionRequest\n"
                    + "".join(f"{name}\n  Extra inputs are not permitted [type=extra_forbidden]\n"
                              for name in extra))
            return Refusal(400, json.dumps({"error": text}).encode())
    if dialect == "openai":
        for name in _OPENAI_REFUSED:
            if name in request:
                return Refusal(400, json.dumps({"error": {
                    "message": f"Unrecognized request argument supplied: {name}",
                    "type": "invalid_request_error", "param": None, "code": None}}).encode())
    if dialect == "tgi" and kind == "completions" and not _text_prompt(prompt):
        return Refusal(422, b"Failed to deserialize the JSON body into the target type: prompt: "
                            b"data did not match any variant of untagged enum Prompt",
                       "text/plain; charset=utf-8")
    if dialect == "ollama" and kind == "completions" and not isinstance(prompt, str):
        return Refusal(400, json.dumps({"error": {
            "message": "json: cannot unmarshal array into Go struct field "
                       "CompletionRequest.prompt of type string",
            "type": "invalid_request_error"}}).encode())
    return None


def _text_prompt(prompt) -> bool:
    return isinstance(prompt, str) or (isinstance(prompt, list)
                                       and all(isinstance(p, str) for p in prompt))


class DialectStream:
    """One response's events in a dialect: what comes before the first token, each token event,
    and what ends the stream. Each is the bytes of whole SSE events."""

    def __init__(self, dialect: str, kind: str, response_id: str, model: str, request: dict,
                 ids: list[int], step: int, prompt_tokens: int | None) -> None:
        self.dialect, self.kind, self.ids, self.step = dialect, kind, ids, step
        self.events = -(-len(ids) // step)
        self.prompt_tokens = prompt_tokens
        options = request.get("stream_options") or {}
        self.include_usage = bool(options.get("include_usage")) or (
            dialect == "trtllm" and "stream_options" in request)
        self.with_ids = ((dialect == "sglang" and bool(request.get("return_token_ids")))
                         or (dialect == "trtllm" and request.get("detokenize") is False))
        self.logprob_ids = dialect == "llamacpp" and (request.get("n_probs") or 0) >= 1
        self.text = not (dialect == "trtllm" and request.get("detokenize") is False)
        self.head = {"id": "" if dialect == "tgi" else response_id,
                     "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
                     "created": 0, "model": model}

    def _event(self, choices: list[dict], usage: dict | None = None, trailing: str = "") -> bytes:
        chunk = {**self.head, "choices": choices}
        if usage is not None or (self.dialect == "openai" and self.include_usage):
            chunk["usage"] = usage
        return f"data: {json.dumps(chunk, separators=(',', ':'))}{trailing}\n\n".encode()

    def _usage(self, completion_tokens: int) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": (self.prompt_tokens or 0) + completion_tokens}

    def _choice(self, text: str, finish: str | None, ids: list[int] | None) -> dict:
        if self.kind == "chat":
            delta = {"role": "assistant", "content": text} if self.dialect == "tgi" else \
                {"content": text}
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
        out = b""
        if self.dialect == "tgi":
            out += b":\n\n"  # axum's keep-alive comment
        if self.kind == "chat" and self.dialect in ("sglang", "trtllm", "llamacpp"):
            role = {"index": 0, "delta": {"role": "assistant", "content": None},
                    "finish_reason": None}
            out += self._event([role], trailing=" " if self.dialect == "trtllm" else "")
        elif self.dialect == "trtllm":  # an engine output that decoded to nothing yet
            out += self._event([self._choice("", None, [] if self.with_ids else None)])
        return out

    def token_event(self, n: int) -> bytes:
        group = self.ids[n * self.step:(n + 1) * self.step]
        last = n == self.events - 1
        text = "".join(f" t{i}" for i in group) if self.text else ""
        finish = "length" if last else ("" if self.dialect == "tgi" else None)
        usage = None
        if self.dialect == "ollama" and self.include_usage:
            usage = self._usage(0)
        if self.dialect in ("tgi", "llamacpp") and last:  # on the finish chunk
            usage = self._usage(len(self.ids))
        if self.dialect == "ollama" and last:  # the text, then an empty chunk with the finish
            return (self._event([self._choice(text, None, group)], usage)
                    + self._event([self._choice("", finish, None)], usage))
        return self._event([self._choice(text, finish, group)], usage)

    def tail(self) -> bytes:
        """The usage chunk where the dialect sends one on its own, and [DONE]."""
        out = b""
        if self.include_usage and self.dialect not in ("tgi", "llamacpp"):
            out += self._event([], self._usage(len(self.ids)))
        return out + b"data: [DONE]\n\n"

