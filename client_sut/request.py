"""What the client asks a server for: the OpenAI API it speaks, MLPerf's generation settings,
one sample's request body, and how long it waits for the answer. Pure values, shared by the
configuration and the measuring side.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import msgspec


class Api(str, Enum):
    COMPLETIONS = "completions"
    CHAT = "chat"

    @property
    def path(self) -> str:
        return "/v1/completions" if self is Api.COMPLETIONS else "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """MLPerf's generation settings for Llama-3.1-8B."""

    max_tokens: int = 128
    min_tokens: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 1
    seed: int = 42


def request_body(api: Api, model: str, params: GenerationParams, *,
                 prompt_ids: tuple[int, ...] | None, prompt_text: str,
                 omit: tuple[str, ...] = (),
                 extra: tuple[tuple[str, int | bool], ...] = ()) -> bytes:
    """The JSON body for one sample; built once per sample, before the run. `omit`: the
    fields the server refuses (its dialect's), left out; `extra`: fields of its own that make
    it give its ids (llama.cpp's n_probs)."""
    body: dict = {
        "model": model,
        "max_tokens": params.max_tokens,
        "min_tokens": params.min_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "seed": params.seed,
        "stream": True,
        "stream_options": {"include_usage": True},
        "return_token_ids": True,
    }
    if api is Api.CHAT:
        body["messages"] = [{"role": "user", "content": prompt_text}]
    else:
        body["prompt"] = list(prompt_ids) if prompt_ids is not None else prompt_text
    for name in omit:
        body.pop(name, None)
    body.update(extra)
    return msgspec.json.encode(body)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. No request is ever retried: a retry inside a measured run would hide a failure.

    `keepalive` closes connections idle that long. It must stay well under the server's own
    keep-alive (vLLM's uvicorn: 5 s): otherwise a request can be written into a connection the
    server is closing, and fail though the server is healthy. Seen on a CPU-starved server: two
    requests on reused connections were dropped 1.36 s after their send, most likely by a
    keep-alive timer that fired late, after the request had arrived.
    """

    connect: float = 10.0
    first_byte: float = 60.0
    gap: float = 120.0
    total: float = 900.0
    keepalive: float = 2.5
