"""One streamed request -> one RequestRecord.

The transport stamps every read with the monotonic clock as it arrives, before any parsing (up
to the first token with the kernel's own arrival stamp, where it can), and hands the body here
at once. An event carries tokens when it has output token ids (vLLM's
`return_token_ids`) or, from a server that sends text only, non-empty text; a role-only or
usage-only chunk carries none. Each event is stamped with the read that completed it.

Against a busy vLLM every read carries one event, so what is done per read is what a token costs.
Until the first token each read is framed and decoded at once (the first token is reported to
LoadGen as it arrives); after it, a read is only appended to a list, its stamp to an array, and
the stored reads are read when the exchange ends, however it ends:
- in bulk, when each read is exactly one `data:` event whose chunk only adds token ids (vLLM's
  ordinary middle-of-stream chunk, its ids last; uvicorn writes each event as its own HTTP chunk,
  which httptools hands over as one body piece): the first such read is framed and decoded as
  any other, and shows the bytes around its text and its ids; every later read that has those
  same bytes around the inside of a JSON string (no line break in it) and a list of ids is the
  same chunk but for them. That is checked by a fixed number of passes over all the reads in C
  (each read cut at its ids, its parts compared as a whole), and the ids are decoded in one
  call. No Python step runs per event, and no chunk is decoded whole: msgspec takes longer over
  a whole chunk than these passes do;
- else (the last chunk with its finish reason, usage, errors, `[DONE]`, events split or joined
  across reads, CRLF, comments, text-only servers) by the same framing and decoding as before the
  first token, replayed read by read under each read's stamp; where a stream cannot be read in
  bulk as a whole, it is tried in batches of reads, so that a read split here and there costs
  its batch, not the stream.
Either way the record is what reading every well-formed event as it arrived makes (tests/unit/
test_stored_reads.py holds the two side by side). A server's error event is therefore seen when
the stream ends, not when it arrives (vLLM ends the stream after one; a stream that never ends is
cut by the watchdog, which still sees every read), and it outranks however the exchange ended,
since it came first. A stream's stored reads are its body, about 250 bytes per token.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable
from itertools import repeat
from operator import getitem, itemgetter
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


class _LogprobEntry(msgspec.Struct):
    id: int | None = None


class _Logprobs(msgspec.Struct):
    content: list[_LogprobEntry] | None = None  # llama.cpp (asked with n_probs); OpenAI's
    # completions logprobs have other fields, read as no ids


class _Choice(msgspec.Struct):
    text: str | None = None
    delta: _Delta | None = None
    token_ids: list[int] | None = None
    finish_reason: str | None = None
    logprobs: _Logprobs | None = None


class _Timings(msgspec.Struct):
    predicted_n: int | None = None  # llama.cpp's tokens generated so far (timings_per_token)


class _Usage(msgspec.Struct):
    completion_tokens: int | None = None


class _Chunk(msgspec.Struct):
    id: str | None = None
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None
    timings: _Timings | None = None
    error: Any = None  # vLLM: {"message", "type", "code"}; rare, so decoded generically
    object: str | None = None
    message: str | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_decode_ids = msgspec.json.Decoder(list[int]).decode
_decode_ids_lists = msgspec.json.Decoder(list[list[int]]).decode
_first, _third = itemgetter(0), itemgetter(2)  # of what bytes.rpartition returns

# on_first_token(token_ids_of_first_event or None, text_of_first_event) -> when it was reported
# to LoadGen (perf_counter_ns), or None where nothing is reported (Offline)
FirstTokenHook = Callable[[list[int] | None, str], int | None]

# vLLM's ordinary chunk, as one read: `data: `, compact JSON whose last member is the choices and
# whose one choice ends with its token ids, a blank line. Within a JSON string every quote is
# escaped, so a quoted key below can only be that key.
_PREFIX = b"data: "
_IDS_KEY = b'"token_ids":['
_IDS_END = b"]}]}\n\n"  # ids, choice, choices, chunk: all closed, nothing after
_IDS = slice(None, -len(_IDS_END))  # of what follows the ids key
_NO_FINISH = b'"finish_reason":null'
_TEXT_KEYS = (b'"text":"', b'"content":"')  # completions' text, chat's delta
_BATCH = 16  # reads per bulk read where the whole stream cannot be read at once
ERROR_DETAIL_CHARS = 300


class StreamAccumulator:
    """One stream's state while it runs (the transport's sink); frozen into a RequestRecord.

    Every read's bytes arrive with the time they arrived. Until the first token, each SSE event
    they complete is handled at once, under that time; after it, the reads are stored and
    `read_stored` handles them when the exchange is over.
    """

    __slots__ = ("event_ns", "event_tokens", "token_ids", "texts", "pieces", "saw_ids",
                 "ids_in_logprobs",
                 "usage_tokens", "finish_reason", "first_reported", "done",
                 "response_id", "status", "first_byte_ns", "error_body", "scanner", "watched",
                 "on_first_token", "first_reported_ns", "stored", "stored_ns")

    def __init__(self, on_first_token: FirstTokenHook, watched: Watched) -> None:
        self.event_ns = array("q")
        self.event_tokens = array("i")
        self.token_ids = array("i")
        self.texts: list[str] = []
        self.pieces: list[tuple[str, tuple[int, ...], int | None]] = []  # where ids may be left out
        self.saw_ids = False
        self.ids_in_logprobs = False  # llama.cpp's: they may leave tokens out, the text does not
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
        self.stored: list[bytes] = []  # the reads after the first token, as they came
        self.stored_ns = array("q")  # and when each arrived

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
        if self.first_reported:  # the hot path: nothing is parsed per read (module docstring)
            self.stored.append(data)
            self.stored_ns.append(now_ns)
            return
        if self.status != 200:
            if len(self.error_body) < ERROR_DETAIL_CHARS:
                self.error_body += data
            return
        self._read(now_ns, data)

    def _read(self, now_ns: int, data: bytes) -> None:
        for payload in self.scanner.feed(data):
            self.add_event(now_ns, payload)

    # --- the stored reads ------------------------------------------------------------------------

    def read_stored(self) -> int:
        """Handles the reads stored since the first token, in order, each under its own stamp,
        and raises what `add_event` raises for the first event that fails. Returns how many of
        them were read as plain token chunks (module docstring)."""
        stored, stored_ns = self.stored, self.stored_ns
        self.stored, self.stored_ns = [], array("q")
        end = len(stored)  # the stream's tail ([DONE], usage, the last token) is no token chunk
        while end and (_IDS_KEY not in stored[end - 1] or _NO_FINISH not in stored[end - 1]):
            end -= 1
        plain = self._read_plain(stored[:end], stored_ns[:end])
        self._replay(stored[end:], stored_ns[end:])
        return plain

    def _read_plain(self, reads: list[bytes], reads_ns: array) -> int:
        """Reads the first read as any other, and the rest at once when each is the same chunk
        but for its text and ids; where they are not, in batches that are read the same way, or
        one by one. Returns how many were read as plain token chunks."""
        if not reads:
            return 0
        events = len(self.event_ns)
        self._read(reads_ns[0], reads[0])
        shape = self._plain_shape(reads[0]) if len(self.event_ns) == events + 1 else None
        if shape is not None and self._add_like(shape, reads[1:], reads_ns[1:]):
            return len(reads)
        if len(reads) <= _BATCH:
            self._replay(reads[1:], reads_ns[1:])
            return 0
        return sum(self._read_plain(reads[start:start + _BATCH], reads_ns[start:start + _BATCH])
                   for start in range(1, len(reads), _BATCH))

    def _replay(self, reads: list[bytes], reads_ns: array) -> None:
        for now_ns, data in zip(reads_ns, reads):
            self._read(now_ns, data)

    def _plain_shape(self, read: bytes) -> tuple[bytes, bytes] | None:
        """The bytes before and after the text of `read`, an event just read as any other, when
        it was a plain token chunk: one `data:` line whose chunk's last member is its one
        choice, whose last member is its ids (vLLM's), and whose reading added one event of
        those ids and no finish reason (an error had raised). A read with the same bytes around
        its own text and ids is the same chunk but for them: what else those bytes say (its id,
        any usage) it says again, which changes nothing."""
        if (not self.saw_ids or self.ids_in_logprobs or self.finish_reason is not None
                or self.response_id is None or self.scanner.pending
                or not read.startswith(_PREFIX) or not read.endswith(_IDS_END)
                or not _one_line(read[:-2])):
            return None
        head, _, tail = read.rpartition(_IDS_KEY)
        text_starts = max((at + len(key) for key in _TEXT_KEYS if (at := head.rfind(key)) >= 0),
                          default=-1)
        text_ends = _string_end(head, text_starts) if text_starts >= 0 else -1
        try:
            ids = _decode_ids(b"[" + tail[_IDS] + b"]")
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if text_ends < 0 or not ids or self.event_tokens[-1] != len(ids):
            return None
        return head[:text_starts], head[text_ends:]

    def _add_like(self, shape: tuple[bytes, bytes], reads: list[bytes], reads_ns: array) -> bool:
        """Adds the events of `reads` when each is `shape`'s bytes around the inside of a JSON
        string with no line break, then a list of ids and the chunk's end: all or nothing, in a
        fixed number of Python steps (each a pass over the reads in C)."""
        if not reads:
            return True
        before, after = shape
        n, text = len(reads), slice(len(before), -len(after))
        cut = list(map(bytes.rpartition, reads, repeat(_IDS_KEY)))
        heads, tails = list(map(_first, cut)), list(map(_third, cut))
        if min(map(len, heads)) < len(before) + len(after):
            return False
        texts = list(map(getitem, heads, repeat(text)))
        ids_lists = list(map(getitem, tails, repeat(_IDS)))
        # Each part as long as its read's: equal as a whole, they are equal read by read.
        if ((after + before).join(texts) != b"".join(heads)[len(before):-len(after)]
                or _IDS_END.join(ids_lists) + _IDS_END != b"".join(tails)):
            return False
        all_texts, all_ids = b"".join(texts), b",".join(ids_lists)
        if not _one_line(all_texts) or not _one_line(all_ids):
            return False
        if (b'"' in all_texts or b"\\" in all_texts) and not _inside_strings(texts):
            return False
        try:  # an empty list leaves two commas, or one at an end: no decode then
            ids = _decode_ids(b"[" + all_ids + b"]")
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        if len(ids) == n:  # one token per event, as vLLM streams
            self.event_tokens.extend(repeat(1, n))
        else:
            self.event_tokens.extend(map(len, _decode_ids_lists(
                b"[[" + b"],[".join(ids_lists) + b"]]")))
        self.token_ids.fromlist(ids)
        self.event_ns.extend(reads_ns)
        return True

    # --- events ----------------------------------------------------------------------------------

    def add_event(self, arrived_ns: int, payload: bytes) -> None:
        if payload == DONE:
            self.done = True
            return
        chunk = _decode_chunk(payload)
        if chunk.error is not None or chunk.object == "error":
            raise _StreamError(ErrorKind.SERVER_ERROR_EVENT,
                               f"server error in stream: {_error_message(chunk)}")
        if self.response_id is None:
            self.response_id = chunk.id
        # The last count above zero: Ollama puts a zero usage on every chunk before the real one.
        if chunk.usage is not None and chunk.usage.completion_tokens:
            self.usage_tokens = chunk.usage.completion_tokens
        n_tokens = 0
        ids: list[int] | None = None
        text = ""
        for choice in chunk.choices:
            piece = choice.text if choice.delta is None else choice.delta.content
            if piece:
                text += piece
            given = choice.token_ids
            if not given and (given := _logprob_ids(choice)):
                self.ids_in_logprobs = True
            if given:
                ids = given if ids is None else ids + given
            if choice.finish_reason:  # TGI sends "" on every chunk before the last
                self.finish_reason = choice.finish_reason
        if ids:
            self.saw_ids = True
            self.token_ids.extend(ids)
            n_tokens = len(ids)
        elif text:
            n_tokens = 1  # a text-only server: at least one token, exact count from usage
        # Only an answer with no ids at all, or with ids that may leave tokens out, is kept to be
        # re-tokenized.
        if text and (not self.saw_ids or self.ids_in_logprobs):
            self.texts.append(text)
        if self.ids_in_logprobs and (text or ids):  # to recover the ids it leaves out
            self.pieces.append((text, tuple(ids or ()),
                                chunk.timings.predicted_n if chunk.timings else None))
        self.event_ns.append(arrived_ns)
        self.event_tokens.append(n_tokens)
        if n_tokens and not self.first_reported:
            self.first_reported = True
            self.first_reported_ns = self.on_first_token(ids, text)

    def id_source(self) -> TokenIdSource:
        if self.saw_ids:  # where a server gives ids for some events only, those are what it gave
            if self.ids_in_logprobs and (self.usage_tokens or 0) > len(self.token_ids):
                return TokenIdSource.IDS_MISSING  # fewer ids than it counted: the whole text
            return TokenIdSource.SERVER
        return TokenIdSource.RETOKENIZED if self.texts else TokenIdSource.NONE


def _one_line(data: bytes) -> bool:
    return b"\n" not in data and b"\r" not in data


def _string_end(data: bytes, start: int) -> int:
    """Where the JSON string whose inside starts at `start` ends: its first quote that no
    backslash escapes (-1 where none does)."""
    end = data.find(b'"', start)
    while end >= 0:
        backslashes = end - start - len(data[start:end].rstrip(b"\\"))
        if backslashes % 2 == 0:
            return end
        end = data.find(b'"', end + 1)
    return -1


def _inside_strings(texts: list[bytes]) -> bool:
    """Whether each of `texts` can be the inside of a JSON string: each of its quotes escaped,
    and no backslash left open at its end (escaped backslashes taken out first, left to right,
    as JSON reads them; a NUL marks each text's end, and a text holding one is refused)."""
    marked = b"\x00".join(texts).replace(b"\\\\", b"") + b"\x00"
    return (marked.count(b"\x00") == len(texts) and b"\\\x00" not in marked
            and marked.count(b'"') == marked.count(b'\\"'))


def _logprob_ids(choice: _Choice) -> list[int] | None:
    """llama.cpp's generated ids: one logprobs entry per token of the chunk."""
    if choice.logprobs is None or not choice.logprobs.content:
        return None
    ids = [entry.id for entry in choice.logprobs.content]
    return None if None in ids else ids


def _error_message(chunk: _Chunk) -> str:
    """The server's own words, from each shape an error takes inside a 200 stream: vLLM's and
    SGLang's `{"error": {"message", "type", "code"}}` (or the chunk itself with `object: error`),
    llama.cpp's `{"error": {"code", "message", "type"}}`, TGI's `{"error": {"message",
    "http_status_code"}}` and TensorRT-LLM's `{"error": "text"}`."""
    error = chunk.error if chunk.error is not None else chunk.message
    if isinstance(error, dict):
        message = error.get("message")
        code = error.get("code", error.get("http_status_code"))
        if isinstance(message, str):
            return f"{message} (code {code})" if code is not None else message
    return str(error)


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
        self.exchange = connection.exchange(self.request, self.acc, self.send_ns)

    def written_into_a_closed_connection(self) -> bool:
        """Its connection was a reused one and not one byte of a response came back on it."""
        return (self.connection is not None and self.connection.exchanges > 1
                and self.acc.status is None and not self.acc.event_ns)

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
        try:
            await inflight.exchange
        except ConnectionLost:
            if not inflight.written_into_a_closed_connection():
                raise
            # The server had closed this kept-alive connection before our request reached it:
            # no server failed it, so it goes once more, on a new connection.
            pool.closes_after_response = True
            inflight.write(await pool.connect())
            await inflight.exchange
    except asyncio.CancelledError:
        # The watchdog (a timeout) or an interrupted run: either way, keep what arrived.
        inflight.drop()
        error = (RequestError(ErrorKind.TIMEOUT, watched.reason) if watched.reason
                 else RequestError(ErrorKind.CANCELLED, INTERRUPTED))
    except (_StreamError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        error = _event_error(exc)
    except MalformedResponse as exc:
        error = RequestError(ErrorKind.MALFORMED, str(exc))
    except ConnectionLost as exc:
        error = RequestError(ErrorKind.DISCONNECTED, f"connection broken: {exc}")
    except asyncio.TimeoutError:
        error = RequestError(ErrorKind.TIMEOUT, f"connect timed out after {pool.connect_timeout_s:g}"
                                                f" s (--connect-timeout)")
    except ConnectionRefusedError as exc:  # nobody listens: the server is down or restarting
        error = RequestError(ErrorKind.REFUSED, f"connection refused by {endpoint}: {exc}")
    except OSError as exc:  # unreachable, TLS failures: before anything was sent
        error = RequestError(ErrorKind.CONNECT, f"cannot connect to {endpoint}: {exc}")
    finally:
        watchdog.forget(watched)
    end_ns = clock()
    try:
        acc.read_stored()
    except (_StreamError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        error = _event_error(exc)  # the event arrived before whatever ended the exchange
    else:
        error = error or _outcome(acc)
    source = acc.id_source()
    return RequestRecord(
        sample_index=sample_index, endpoint=endpoint, issue_ns=issue_ns, send_ns=inflight.send_ns,
        first_byte_ns=acc.first_byte_ns, end_ns=end_ns, event_ns=acc.event_ns,
        event_tokens=acc.event_tokens, token_ids=acc.token_ids, token_id_source=source,
        server_completion_tokens=acc.usage_tokens, finish_reason=acc.finish_reason,
        http_status=acc.status, error=error, response_id=acc.response_id,
        first_reported_ns=acc.first_reported_ns, connect_ns=inflight.connect_ns,
        # Only these answers are re-tokenized; nobody else needs the text kept.
        text="".join(acc.texts) if source.retokenized else "",
        pieces=tuple(acc.pieces) if source is TokenIdSource.IDS_MISSING else (),
    )


def _event_error(exc: Exception) -> RequestError:
    if isinstance(exc, _StreamError):
        return RequestError(exc.kind, str(exc))
    return RequestError(ErrorKind.MALFORMED, f"malformed event: {exc}")


def _outcome(acc: StreamAccumulator) -> RequestError | None:
    """What a whole exchange's events amount to: a failure, or None for a good stream."""
    if acc.status != 200:
        detail = acc.error_body[:ERROR_DETAIL_CHARS].decode("utf-8", "replace")
        return RequestError(ErrorKind.HTTP_STATUS,
                            f"HTTP {acc.status}: {detail.replace(chr(10), ' ')}")
    if not acc.done:
        return RequestError(ErrorKind.TRUNCATED, "stream ended without [DONE]"
                            + (" inside an event" if acc.scanner.pending.strip() else ""))
    if not acc.first_reported:
        return RequestError(ErrorKind.NO_TOKENS, "stream finished with no output token")
    return None
