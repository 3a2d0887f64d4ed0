"""How an OpenAI-compatible server speaks: what it accepts of the client's request, and where
its answer puts the generated ids and the usage. Pure values and rules; the probe that finds
them before a run is `preflight/dialect_probe.py`.

The client's request is vLLM's dialect (the prompt as token ids, MLPerf's `min_tokens`, `top_k`
and `seed`, `stream_options.include_usage`, `return_token_ids`). Other servers refuse parts of
it (TensorRT-LLM rejects any field it does not know, OpenAI rejects `top_k` and `min_tokens`,
TGI and Ollama reject a prompt of ids) or silently ignore them (TGI, llama.cpp and Ollama have
no `min_tokens`). Facts per server, from each server's source: docs/servers.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# The fields of the request a server may refuse, and what leaving each out costs.
OPTIONAL_FIELDS = ("return_token_ids", "stream_options", "min_tokens", "top_k", "seed")
MLPERF_SETTINGS = {"min_tokens": "min_tokens 1", "top_k": "top_k 1 (greedy)", "seed": "seed 42"}

# Where the generated ids come from.
IDS_STREAMED = "streamed"  # token_ids in each chunk (vLLM, SGLang with return_token_ids)
IDS_LOGPROBS = "logprobs"  # logprobs.content[].id in each chunk (llama.cpp, asked with n_probs)
IDS_NONE = "none"  # text only: the reference tokenizer counts the concatenated text
# Where the usage comes.
USAGE_CHUNK = "chunk"  # a chunk of its own with no choices (vLLM, SGLang, TRT-LLM, OpenAI)
USAGE_INLINE = "inline"  # on the finish chunk (TGI, llama.cpp)
USAGE_EVERY_CHUNK = "every_chunk"  # on every chunk, zeros until the real one (Ollama)
USAGE_NONE = "none"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one endpoint accepts and returns, as the probe found it (or `--dialect` says)."""

    token_prompt: bool = True  # takes the prompt as token ids; else the exact text is sent
    refused: tuple[str, ...] = ()  # fields of OPTIONAL_FIELDS it refused: never sent to it
    ignored: tuple[str, ...] = ()  # fields it takes but does not honour (known per family)
    ids: str = IDS_STREAMED
    usage: str = USAGE_CHUNK
    role_chunk: bool = False  # a chunk with no token before the first one (chat)
    extra: tuple[tuple[str, int | bool], ...] = ()  # its own fields that make it give its ids

    def to_json(self) -> dict:
        return {"token_prompt": self.token_prompt, "refused": list(self.refused),
                "ignored": list(self.ignored), "ids": self.ids, "usage": self.usage,
                "role_chunk": self.role_chunk, "extra": dict(self.extra)}


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str  # the server family: vllm, sglang, trtllm, tgi, openai, ollama, llamacpp, unknown
    capabilities: Capabilities
    version: str | None = None
    found_by: str = "probe"  # "probe", "assumed" (the probe learnt nothing), or "--dialect"
    evidence: tuple[str, ...] = ()  # what the probe saw, in order
    probe_requests: int = 0  # sent by the probe, refused ones included (untimed, uncounted)
    warnings: tuple[str, ...] = ()  # why its figures may not mean what they say

    @property
    def paths(self) -> ServerPaths:
        """Where its kind keeps its metrics and its health."""
        return SERVER_PATHS.get(self.name, DEFAULT_PATHS)

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "found_by": self.found_by,
                "evidence": list(self.evidence), "probe_requests": self.probe_requests,
                "warnings": list(self.warnings), "metrics_path": self.paths.metrics,
                "health_path": self.paths.health}


@dataclass(frozen=True, slots=True)
class SelfDescription:
    """What a server says of itself, before any request of ours."""

    owned_by: str | None = None  # its model's entry in /v1/models
    server: str | None = None  # the Server header
    version: str | None = None  # /version
    header_names: tuple[str, ...] = ()  # /v1/models' response headers, lower case
    model_keys: tuple[str, ...] = ()  # the keys of its model's entry in /v1/models
    nim_metadata: bool = False  # /v1/metadata answered, as only NVIDIA NIM's does


# What each server family is known to do with our request (docs/servers.md): for
# `--dialect NAME`, and for what a probe cannot see (a field silently ignored).
KNOWN = {
    "vllm": Capabilities(),
    "sglang": Capabilities(),
    "trtllm": Capabilities(refused=("return_token_ids",), ids=IDS_NONE),
    "tgi": Capabilities(token_prompt=False, ignored=("min_tokens", "top_k"), ids=IDS_NONE,
                        usage=USAGE_INLINE),
    "openai": Capabilities(refused=("return_token_ids", "min_tokens", "top_k"), ids=IDS_NONE),
    "ollama": Capabilities(token_prompt=False, ignored=("min_tokens", "top_k"), ids=IDS_NONE,
                           usage=USAGE_EVERY_CHUNK),
    # timings_per_token: each chunk's running count of generated tokens, which tells how many
    # ids it left out (a token ending inside a UTF-8 character gets no chunk of its own).
    "llamacpp": Capabilities(ignored=("min_tokens",), ids=IDS_LOGPROBS, usage=USAGE_INLINE,
                             extra=(("n_probs", 1), ("timings_per_token", True))),
    "llama-cpp-python": Capabilities(token_prompt=False, ids=IDS_NONE, usage=USAGE_NONE),
    "litellm": Capabilities(ids=IDS_NONE),  # its re-chunker drops token_ids
    "nim": Capabilities(),  # NIM for LLMs 2.x: vLLM inside
}


@dataclass(frozen=True, slots=True)
class ServerPaths:
    metrics: str | None  # its Prometheus exposition; None: it has none
    health: str | None  # None: /health, else /v1/models (measure/health.py)


# Where each kind keeps its Prometheus metrics and its health (docs/servers.md): TRT-LLM's
# /metrics is JSON, its exposition is at /prometheus/metrics; a LiteLLM proxy's /health calls
# every model behind it, so it is never asked; Ollama, OpenAI and llama-cpp-python have none.
SERVER_PATHS = {
    "trtllm": ServerPaths("/prometheus/metrics", "/health"),
    "nim": ServerPaths("/v1/metrics", "/v1/health/ready"),
    "litellm": ServerPaths("/metrics", "/health/liveliness"),
    "ollama": ServerPaths(None, "/"),
    "openai": ServerPaths(None, "/v1/models"),
    "llama-cpp-python": ServerPaths(None, "/v1/models"),
}
DEFAULT_PATHS = ServerPaths("/metrics", None)

# Systems whose figures cannot mean what a benchmark says they mean: measured, with a warning.
NOT_HONEST = {
    "llama-cpp-python": "llama-cpp-python's server runs one request at a time (a global lock): "
                        "at any concurrency its latencies measure its queue",
    "litellm": "a LiteLLM proxy re-chunks the stream: chunk timing (TTFT, TPOT) is the proxy's, "
               "not the engine's, and the proxy's own latency is in every figure",
    "openai": "OpenAI refuses min_tokens and top_k: the output length and the greedy decoding "
              "MLPerf asks for cannot be pinned",
}


def refused_field(message: str, sent: tuple[str, ...]) -> str | None:
    """The field of ours that a 400/422 answer names: TensorRT-LLM's pydantic "Extra inputs
    are not permitted" lists it on a line of its own, OpenAI says "Unrecognized request argument
    supplied: top_k"."""
    for name in sent:
        if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", message):
            return name
    return None


def refusal_message(body: str) -> str:
    """The words of a refusal's body: `{"error": "..."}` (TensorRT-LLM), `{"error": {"message":
    ...}}` (OpenAI and most), FastAPI's `{"detail": [{"loc", "msg"}]}`, else the text itself."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if isinstance(answer, dict):
        error = answer.get("error", answer.get("message"))
        if isinstance(error, dict):
            error = error.get("message")
        if isinstance(error, str):
            return error
        detail = answer.get("detail")
        if isinstance(detail, list):
            return "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}"
                             for d in detail if isinstance(d, dict))
        if isinstance(detail, str):
            return detail
    return body


_PROMPT_REFUSALS = ("prompt", "untagged enum", "cannot unmarshal array", "expected a string")


def refuses_token_prompt(message: str) -> bool:
    """A 400/422 about the prompt's type (TGI's serde, Ollama's Go decoder, llama-cpp-python)."""
    lowered = message.lower()
    return any(words in lowered for words in _PROMPT_REFUSALS)


def family(description: SelfDescription) -> str | None:
    """The server family where the server says it: `/v1/models` owned_by (and the shape of its
    entry), the Server header, a LiteLLM proxy's own headers, NIM's /v1/metadata (its models
    are owned_by "system", as OpenAI's are). None when nothing says."""
    if description.nim_metadata:
        return "nim"
    if any(name.startswith("x-litellm") for name in description.header_names):
        return "litellm"
    if description.owned_by == "me" and "permissions" in description.model_keys:
        return "llama-cpp-python"
    said = " ".join(s.lower() for s in (description.owned_by, description.server) if s)
    for name, words in (("vllm", ("vllm",)), ("sglang", ("sglang",)),
                        ("trtllm", ("tensorrt", "trtllm", "trt-llm")),
                        ("tgi", ("text-generation", "tgi")), ("ollama", ("ollama",)),
                        ("llamacpp", ("llama.cpp", "llamacpp")), ("openai", ("openai-internal",
                                                                            "system"))):
        if any(word in said for word in words):
            return name
    return None


def dialect_warnings(name: str, prompt_sent: int | None,
                     prompt_counted: int | None) -> tuple[str, ...]:
    """Why a server's figures may not mean what they say: a system that cannot be benchmarked
    honestly, or a prompt the server counted otherwise than it was sent (a chat template wrapped
    around it, as Ollama does on /v1/completions), beyond the one BOS a server may add."""
    warnings = [NOT_HONEST[name]] if name in NOT_HONEST else []
    if prompt_sent is not None and prompt_counted is not None \
            and abs(prompt_counted - prompt_sent) > 1:
        warnings.append(f"the server counted {prompt_counted} prompt tokens for a prompt of "
                        f"{prompt_sent}: it templates or tokenizes the prompt otherwise, so it "
                        f"does not measure the prompt that was sent")
    return tuple(warnings)


def dialect_notes(dialects: dict[str, Dialect], token_prompt_asked: bool) -> list[str]:
    """Compliance notes, one per kind of server: every MLPerf generation setting it will not
    honour (refused, so left out of every request, or known to be ignored), and a prompt sent
    as text where token ids were asked for."""
    kinds: dict[tuple, list[str]] = {}
    for url, dialect in dialects.items():
        kinds.setdefault((dialect.name, dialect.capabilities), []).append(url)
    notes = []
    for (name, capabilities), urls in kinds.items():
        where = f"{', '.join(urls)} ({name})"
        for setting, words in MLPERF_SETTINGS.items():
            if setting in capabilities.refused:
                notes.append(f"{where} refuses MLPerf's {words}: left out of every request")
            elif setting in capabilities.ignored:
                notes.append(f"{where} ignores MLPerf's {words}")
        if token_prompt_asked and not capabilities.token_prompt:
            notes.append(f"{where} refuses a prompt of token ids: each prompt is sent as its "
                         f"text, which the server tokenizes itself")
    return notes


def stream_capabilities(chunks: list[dict]) -> tuple[str, str, bool]:
    """Where a stream put its ids and its usage, and whether a chunk with no token came first:
    read from the decoded chunks of one probe response."""
    choices = [c for chunk in chunks for c in chunk.get("choices") or []]
    if any(c.get("token_ids") for c in choices):
        ids = IDS_STREAMED
    elif any(isinstance(c.get("logprobs"), dict) and any(
            isinstance(entry, dict) and isinstance(entry.get("id"), int)
            for entry in c["logprobs"].get("content") or []) for c in choices):
        ids = IDS_LOGPROBS
    else:
        ids = IDS_NONE
    with_usage = [chunk for chunk in chunks if isinstance(chunk.get("usage"), dict)]
    counted = [chunk for chunk in with_usage if chunk["usage"].get("completion_tokens")]
    if not counted:
        usage = USAGE_NONE
    elif len(with_usage) > len(counted):  # zeros before the real count
        usage = USAGE_EVERY_CHUNK
    elif not counted[-1].get("choices"):
        usage = USAGE_CHUNK
    else:
        usage = USAGE_INLINE
    role_chunk = bool(choices) and not _carries_token(choices[0])
    return ids, usage, role_chunk


def _carries_token(choice: dict) -> bool:
    delta = choice.get("delta") or {}
    return bool(choice.get("token_ids") or choice.get("text") or delta.get("content"))


def guess_family(refusals: tuple[str, ...]) -> str | None:
    """The family a server's refusals point to, when it does not say its name: TensorRT-LLM's
    pydantic, OpenAI's argument check, TGI's serde, Ollama's Go decoder."""
    said = " ".join(refusals).lower()
    for name, words in (("trtllm", "extra inputs are not permitted"),
                        ("openai", "unrecognized request argument"),
                        ("tgi", "untagged enum"), ("ollama", "cannot unmarshal")):
        if words in said:
            return name
    return None


def describe(dialect: Dialect) -> str:
    """One line: what the server is and how the client speaks to it."""
    caps = dialect.capabilities
    ids = {IDS_STREAMED: "streamed", IDS_LOGPROBS: "streamed in logprobs"}.get(
        caps.ids, "none (the reference tokenizer counts)")
    parts = [f"prompt as {'token ids' if caps.token_prompt else 'text'}", f"ids {ids}",
             f"usage {caps.usage}"]
    if caps.refused:
        parts.append(f"refuses {', '.join(caps.refused)}")
    if caps.ignored:
        parts.append(f"ignores {', '.join(caps.ignored)}")
    version = f" {dialect.version}" if dialect.version else ""
    return f"{dialect.name}{version} ({dialect.found_by}): {'; '.join(parts)}"


def table_lines(dialects: dict[str, Dialect]) -> list[str]:
    """`client-sut endpoints --describe`: one row per endpoint."""
    rows = [("endpoint", "kind", "version", "prompt", "ids", "usage", "refuses", "ignores")]
    for url, d in dialects.items():
        caps = d.capabilities
        rows.append((url, f"{d.name} ({d.found_by})", d.version or "-",
                     "token ids" if caps.token_prompt else "text", caps.ids, caps.usage,
                     ", ".join(caps.refused) or "-", ", ".join(caps.ignored) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]


def counted_prompt_tokens(chunks: list[dict]) -> int | None:
    """The server's own count of the prompt: the last usage's prompt_tokens above zero."""
    counts = [chunk["usage"].get("prompt_tokens") for chunk in chunks
              if isinstance(chunk.get("usage"), dict)]
    counts = [count for count in counts if isinstance(count, int) and count > 0]
    return counts[-1] if counts else None
