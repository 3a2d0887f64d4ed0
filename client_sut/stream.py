"""One streamed request -> one RequestRecord.

Every read is stamped with the monotonic clock as it arrives, before any parsing; the SSE events
that read completes carry that stamp. Chunks are decoded into small typed structs (msgspec skips
the fields we do not need, such as vLLM's echo of the prompt ids). An event carries tokens when it
has output token ids (vLLM's `return_token_ids`) or, from a server that sends text only,
non-empty text; a role-only or usage-only chunk carries none.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import aiohttp
import msgspec

from client_sut.records import ErrorKind, RequestError, RequestRecord, TokenIdSource
from client_sut.sse import SseScanner
from client_sut.timeouts import Watchdog, Watched

DONE = b"[DONE]"
INTERRUPTED = "the run was interrupted before this request finished"


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
                 prompt_ids: tuple[int, ...] | None, prompt_text: str) -> bytes:
    """The JSON body for one sample; built once per sample, before the run."""
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
    return msgspec.json.encode(body)


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    text: str | None = None
    delta: _Delta | None = None
    token_ids: list[int] | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    completion_tokens: int | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None
    error: Any = None  # vLLM: {"message", "type", "code"}; rare, so decoded generically
    object: str | None = None
    message: str | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode

# on_first_token(token_ids_of_first_event or None, text_of_first_event)
FirstTokenHook = Callable[[list[int] | None, str], None]


class StreamAccumulator:
    """Mutable state of one stream while it runs; frozen into a RequestRecord at the end."""

    __slots__ = ("event_ns", "event_tokens", "token_ids", "texts", "saw_ids", "saw_text_only",
                 "usage_tokens", "finish_reason", "first_reported", "done")

    def __init__(self) -> None:
        self.event_ns = array("q")
        self.event_tokens = array("i")
        self.token_ids = array("i")
        self.texts: list[str] = []
        self.saw_ids = False
        self.saw_text_only = False
        self.usage_tokens: int | None = None
        self.finish_reason: str | None = None
        self.first_reported = False
        self.done = False

    def add_event(self, arrived_ns: int, payload: bytes, on_first_token: FirstTokenHook) -> None:
        if payload == DONE:
            self.done = True
            return
        chunk = _decode_chunk(payload)
        if chunk.error is not None or chunk.object == "error":
            detail = chunk.error if chunk.error is not None else chunk.message
            raise _StreamError(ErrorKind.SERVER_ERROR_EVENT, f"server error in stream: {detail}")
        if chunk.usage is not None and chunk.usage.completion_tokens is not None:
            self.usage_tokens = chunk.usage.completion_tokens
        n_tokens = 0
        ids: list[int] | None = None
        text = ""
        for choice in chunk.choices:
            piece = choice.text if choice.delta is None else choice.delta.content
            if piece:
                text += piece
            if choice.token_ids:
                ids = choice.token_ids if ids is None else ids + choice.token_ids
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        if ids:
            self.saw_ids = True
            self.token_ids.extend(ids)
            n_tokens = len(ids)
        elif text:
            self.saw_text_only = True
            n_tokens = 1  # a text-only server: at least one token, exact count from usage
        if text:
            self.texts.append(text)
        self.event_ns.append(arrived_ns)
        self.event_tokens.append(n_tokens)
        if n_tokens and not self.first_reported:
            self.first_reported = True
            on_first_token(ids, text)

    def id_source(self) -> TokenIdSource:
        if self.saw_ids and not self.saw_text_only:
            return TokenIdSource.SERVER
        return TokenIdSource.RETOKENIZED if self.texts else TokenIdSource.NONE


class _StreamError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


async def stream_request(
    session: aiohttp.ClientSession, endpoint: str, api: Api, body: bytes, *,
    sample_index: int, issue_ns: int, on_first_token: FirstTokenHook, watchdog: Watchdog,
) -> RequestRecord:
    """Send one streaming request and measure it. Never raises: every outcome is a record."""
    acc = StreamAccumulator()
    first_byte_ns: int | None = None
    status: int | None = None
    error: RequestError | None = None
    clock = time.perf_counter_ns
    send_ns = clock()
    watched = Watched(asyncio.current_task(), send_ns)
    watchdog.watch(watched)
    try:
        async with session.post(endpoint + api.path, data=body) as response:
            first_byte_ns = watched.last_ns = clock()
            watched.started = True
            status = response.status
            if status != 200:
                detail = (await response.text(errors="replace"))[:300].replace("\n", " ")
                raise _StreamError(ErrorKind.HTTP_STATUS, f"HTTP {status}: {detail}")
            if response.content_type != "text/event-stream":
                raise _StreamError(ErrorKind.MALFORMED, f"expected text/event-stream, got "
                                                        f"{response.content_type}")
            scanner = SseScanner()
            async for data in response.content.iter_any():
                arrived_ns = watched.last_ns = clock()
                for payload in scanner.feed(data):
                    acc.add_event(arrived_ns, payload, on_first_token)
            if not acc.done:
                raise _StreamError(ErrorKind.TRUNCATED, "stream ended without [DONE]"
                                   + (" inside an event" if scanner.pending.strip() else ""))
            if not acc.first_reported:
                raise _StreamError(ErrorKind.NO_TOKENS, "stream finished with no output token")
    except asyncio.CancelledError:
        # The watchdog (a timeout) or an interrupted run: either way, keep what arrived.
        error = (RequestError(ErrorKind.TIMEOUT, watched.reason) if watched.reason
                 else RequestError(ErrorKind.CANCELLED, INTERRUPTED))
    except _StreamError as exc:
        error = RequestError(exc.kind, str(exc))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        error = RequestError(ErrorKind.MALFORMED, f"malformed event: {exc}")
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
        error = RequestError(ErrorKind.TIMEOUT, f"connect timed out: {exc or type(exc).__name__}")
    except aiohttp.ClientConnectorError as exc:
        error = RequestError(ErrorKind.CONNECT, f"cannot connect to {endpoint}: {exc.os_error}")
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
            aiohttp.ClientOSError) as exc:
        error = RequestError(ErrorKind.DISCONNECTED, f"connection broken: {exc}")
    except aiohttp.ClientError as exc:
        error = RequestError(ErrorKind.DISCONNECTED, f"{type(exc).__name__}: {exc}")
    finally:
        watchdog.forget(watched)
    return RequestRecord(
        sample_index=sample_index, endpoint=endpoint, issue_ns=issue_ns, send_ns=send_ns,
        first_byte_ns=first_byte_ns, end_ns=clock(), event_ns=acc.event_ns,
        event_tokens=acc.event_tokens, token_ids=acc.token_ids, token_id_source=acc.id_source(),
        server_completion_tokens=acc.usage_tokens, finish_reason=acc.finish_reason,
        http_status=status, error=error,
        # Only a text-only server's answer is re-tokenized; nobody else needs the text kept.
        text="".join(acc.texts) if acc.id_source() is TokenIdSource.RETOKENIZED else "",
    )
