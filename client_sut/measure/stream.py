"""One streamed request -> one RequestRecord.

The transport stamps every read with the monotonic clock as it arrives, before any parsing, and
hands the body here at once; the SSE events that read completes carry that stamp. An event
carries tokens when it has output token ids (vLLM's `return_token_ids`) or, from a server that
sends text only, non-empty text; a role-only or usage-only chunk carries none.

Per token this is the client's hot path. Events are decoded into small typed structs (msgspec
skips the fields we do not need, such as vLLM's echo of the prompt ids) until the first token;
after it, vLLM's ordinary compact chunk is read by a byte scan that slices the ids out, and the
ids are decoded in one call when the stream ends. Anything else (the last chunk with its finish
reason, usage, errors, other servers' layouts) takes the full decoder.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable
from typing import Any

import msgspec

from client_sut.measure.sse import SseScanner
from client_sut.measure.timeouts import Watchdog, Watched
from client_sut.measure.transport import (
    Connection,
    ConnectionLost,
    ConnectionPool,
    MalformedResponse,
)
from client_sut.records import ErrorKind, RequestError, RequestRecord, TokenIdSource
from client_sut.request import Api

DONE = b"[DONE]"
INTERRUPTED = "the run was interrupted before this request finished"


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
    id: str | None = None
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None
    error: Any = None  # vLLM: {"message", "type", "code"}; rare, so decoded generically
    object: str | None = None
    message: str | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_decode_ids = msgspec.json.Decoder(list[int]).decode

# on_first_token(token_ids_of_first_event or None, text_of_first_event) -> when it was reported
# to LoadGen (perf_counter_ns), or None where nothing is reported (Offline)
FirstTokenHook = Callable[[list[int] | None, str], int | None]

# The fast path reads vLLM's compact middle-of-stream chunk without decoding it. Within a JSON
# string every quote is escaped, so `"token_ids":[` can only be the key itself.
_IDS_KEY = b'"token_ids":['
_IDS_OFFSET = len(_IDS_KEY)
_COMPACT_END = b"]}]}\n\n"  # ids, choice, choices, chunk: all closed, nothing after
_NO_FINISH = b'"finish_reason":null'
# vLLM puts finish_reason just before the ids: 64 bytes before them in a completion chunk (after
# it come stop_reason and prompt_token_ids, both null); the window leaves room for more.
_FINISH_WINDOW = 160
ERROR_DETAIL_CHARS = 300


class StreamAccumulator:
    """One stream's state while it runs (the transport's sink); frozen into a RequestRecord.

    Every read's bytes arrive with the time they arrived; each SSE event they complete is
    handled at once, under that time.
    """

    __slots__ = ("event_ns", "event_tokens", "id_pieces", "token_ids", "texts", "saw_ids",
                 "usage_tokens", "finish_reason", "first_reported", "done",
                 "response_id", "status", "first_byte_ns", "error_body", "scanner", "watched",
                 "on_first_token", "first_reported_ns")

    def __init__(self, on_first_token: FirstTokenHook, watched: Watched) -> None:
        self.event_ns = array("q")
        self.event_tokens = array("i")
        self.id_pieces: list[bytes] = []  # the fast path's raw id lists, decoded at the end
        self.token_ids = array("i")
        self.texts: list[str] = []
        self.saw_ids = False
        self.usage_tokens: int | None = None
        self.finish_reason: str | None = None
        self.first_reported = False
        self.done = False
        self.response_id: str | None = None
        self.status: int | None = None
        self.first_byte_ns: int | None = None
        self.error_body = b""
        self.scanner = SseScanner()
        self.watched = watched
        self.on_first_token = on_first_token
        self.first_reported_ns: int | None = None

    # --- the transport's sink --------------------------------------------------------------------

    def on_headers(self, now_ns: int, status: int, content_type: str) -> None:
        self.first_byte_ns = now_ns
        self.watched.last_ns = now_ns
        self.watched.started = True
        self.status = status
        if status == 200 and content_type != "text/event-stream":
            raise _StreamError(ErrorKind.MALFORMED,
                               f"expected text/event-stream, got {content_type or 'no type'}")

    def on_body(self, now_ns: int, data: bytes) -> None:
        self.watched.last_ns = now_ns
        if self.first_reported:
            # The fast path: a body piece that is exactly one compact vLLM chunk (uvicorn sends
            # each event as one HTTP chunk) whose one choice ends with its token ids and whose
            # object ends with its choices, so no usage or error follows; no finish reason
            # before the ids, no other choice. The ids are sliced out; nothing is decoded.
            start = data.rfind(_IDS_KEY)
            if (start > 0 and data.endswith(_COMPACT_END) and data.find(b"\n") == len(data) - 2
                    and data.startswith(b"data: ") and not self.scanner.pending
                    and data.find(_NO_FINISH, start - _FINISH_WINDOW, start) >= 0
                    and data.find(_IDS_KEY, 0, start) < 0):
                ids = data[start + _IDS_OFFSET:len(data) - len(_COMPACT_END)]
                if ids:
                    self.id_pieces.append(ids)
                    self.event_ns.append(now_ns)
                    self.event_tokens.append(ids.count(b",") + 1)
                    return
        if self.status != 200:
            if len(self.error_body) < ERROR_DETAIL_CHARS:
                self.error_body += data
            return
        for payload in self.scanner.feed(data):
            self.add_event(now_ns, payload)

    # --- events ----------------------------------------------------------------------------------

    def add_event(self, arrived_ns: int, payload: bytes) -> None:
        if payload == DONE:
            self.done = True
            return
        chunk = _decode_chunk(payload)
        if chunk.error is not None or chunk.object == "error":
            detail = chunk.error if chunk.error is not None else chunk.message
            raise _StreamError(ErrorKind.SERVER_ERROR_EVENT, f"server error in stream: {detail}")
        if self.response_id is None:
            self.response_id = chunk.id
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
            self._flush_ids()
            self.token_ids.extend(ids)
            n_tokens = len(ids)
        elif text:
            n_tokens = 1  # a text-only server: at least one token, exact count from usage
        if text and not self.saw_ids:  # only an answer with no ids at all is re-tokenized
            self.texts.append(text)
        self.event_ns.append(arrived_ns)
        self.event_tokens.append(n_tokens)
        if n_tokens and not self.first_reported:
            self.first_reported = True
            self.first_reported_ns = self.on_first_token(ids, text)

    def _flush_ids(self) -> None:
        """The fast path's id lists, decoded in one call, in stream order."""
        if self.id_pieces:
            self.token_ids.extend(_decode_ids(b"[" + b",".join(self.id_pieces) + b"]"))
            self.id_pieces.clear()

    def output_ids(self) -> array:
        self._flush_ids()
        return self.token_ids

    def id_source(self) -> TokenIdSource:
        if self.saw_ids:  # where a server gives ids for some events only, those are what it gave
            return TokenIdSource.SERVER
        return TokenIdSource.RETOKENIZED if self.texts else TokenIdSource.NONE


class _StreamError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class InFlight:
    """A request from the moment it was handed over until its record is made."""

    __slots__ = ("watched", "acc", "request", "connect_ns", "send_ns", "connection", "exchange")

    def __init__(self, watched: Watched, acc: StreamAccumulator, request: bytes) -> None:
        self.watched = watched
        self.acc = acc
        self.request = request
        self.connect_ns = self.send_ns = watched.send_ns
        self.connection: Connection | None = None
        self.exchange: asyncio.Future | None = None  # None: no idle connection, connect first

    def write(self, connection: Connection) -> None:
        self.connection = connection
        self.send_ns = time.perf_counter_ns()
        self.exchange = connection.exchange(self.request, self.acc)

    def drop(self) -> None:
        """Stops a request cut short (a timeout, an interrupt): its connection is aborted unless
        the whole response had already arrived, when the connection may be back in the pool
        carrying another request."""
        exchange = self.exchange
        if exchange is not None and exchange.done() and not exchange.cancelled():
            exchange.exception()  # retrieved: a failed write is not reported again at exit
            return
        if self.connection is not None:
            self.connection.abort()


def send_request(pool: ConnectionPool, api: Api, body: bytes, *, on_first_token: FirstTokenHook,
                 watchdog: Watchdog) -> InFlight:
    """Writes the request now when a kept-alive connection is idle: on the caller's stack, not
    at the first step of a task, which the loop runs only after every read that arrived in the
    meantime (at 5,000 QPS that wait was half the issue lag). A write that fails is kept for
    `finish_request` to record, as any failure of the exchange is."""
    watched = Watched(None, time.perf_counter_ns())
    inflight = InFlight(watched, StreamAccumulator(on_first_token, watched),
                        pool.request_head(api.path, len(body)) + body)
    watchdog.watch(watched)
    try:
        connection = pool.take_idle()
        if connection is not None:
            inflight.write(connection)
    except Exception as exc:
        inflight.exchange = pool.loop.create_future()
        inflight.exchange.set_exception(exc)
    return inflight


async def finish_request(inflight: InFlight, pool: ConnectionPool, endpoint: str, *,
                         sample_index: int, issue_ns: int, watchdog: Watchdog) -> RequestRecord:
    """Connects if `send_request` found no idle connection, then waits for the whole stream and
    measures it. Never raises: every outcome is a record."""
    clock = time.perf_counter_ns
    watched, acc = inflight.watched, inflight.acc
    watched.task = asyncio.current_task()
    error: RequestError | None = None
    try:
        if inflight.exchange is None:
            inflight.connect_ns = clock()  # waiting for this task's first step was our delay
            inflight.write(await pool.connect())
        await inflight.exchange
        if acc.status != 200:
            detail = acc.error_body[:ERROR_DETAIL_CHARS].decode("utf-8", "replace")
            raise _StreamError(ErrorKind.HTTP_STATUS,
                               f"HTTP {acc.status}: {detail.replace(chr(10), ' ')}")
        if not acc.done:
            raise _StreamError(ErrorKind.TRUNCATED, "stream ended without [DONE]"
                               + (" inside an event" if acc.scanner.pending.strip() else ""))
        if not acc.first_reported:
            raise _StreamError(ErrorKind.NO_TOKENS, "stream finished with no output token")
    except asyncio.CancelledError:
        # The watchdog (a timeout) or an interrupted run: either way, keep what arrived.
        inflight.drop()
        error = (RequestError(ErrorKind.TIMEOUT, watched.reason) if watched.reason
                 else RequestError(ErrorKind.CANCELLED, INTERRUPTED))
    except _StreamError as exc:
        error = RequestError(exc.kind, str(exc))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        error = RequestError(ErrorKind.MALFORMED, f"malformed event: {exc}")
    except MalformedResponse as exc:
        error = RequestError(ErrorKind.MALFORMED, str(exc))
    except ConnectionLost as exc:
        error = RequestError(ErrorKind.DISCONNECTED, f"connection broken: {exc}")
    except asyncio.TimeoutError:
        error = RequestError(ErrorKind.TIMEOUT, f"connect timed out after {pool.connect_timeout_s:g}"
                                                f" s (--connect-timeout)")
    except OSError as exc:  # refused, unreachable, TLS failures: before anything was sent
        error = RequestError(ErrorKind.CONNECT, f"cannot connect to {endpoint}: {exc}")
    finally:
        watchdog.forget(watched)
    source = acc.id_source()
    return RequestRecord(
        sample_index=sample_index, endpoint=endpoint, issue_ns=issue_ns, send_ns=inflight.send_ns,
        first_byte_ns=acc.first_byte_ns, end_ns=clock(), event_ns=acc.event_ns,
        event_tokens=acc.event_tokens, token_ids=acc.output_ids(), token_id_source=source,
        server_completion_tokens=acc.usage_tokens, finish_reason=acc.finish_reason,
        http_status=acc.status, error=error, response_id=acc.response_id,
        first_reported_ns=acc.first_reported_ns, connect_ns=inflight.connect_ns,
        # Only a text-only server's answer is re-tokenized; nobody else needs the text kept.
        text="".join(acc.texts) if source is TokenIdSource.RETOKENIZED else "",
    )
