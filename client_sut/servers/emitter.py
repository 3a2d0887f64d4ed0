"""A loopback token emitter that speaks vLLM's streaming dialect with known timing.

It answers `/v1/completions` and `/v1/chat/completions` with `stream: true` like vLLM 0.32 does
(`token_ids` per choice, a usage-only chunk, `[DONE]`; chat opens with a role-only chunk), after
a known first-token delay and with a known gap between events. It records when it actually wrote
each event (`GET /emitter/log`): under load a Python emitter writes late, so the truth a client is
judged against is what the emitter did, not its schedule.

It is built to stay out of the way of what it measures: a bare asyncio protocol on uvloop with
httptools parsing the requests, each event formatted when it is due, and one timer per stream
that writes every event that has come due when it fires (with no delays, a whole response in one
write). Each response carries a unique id (`cmpl-emitter-N`), so a client's records can be
matched to the log.

`--engine-step-ms S` streams the way vLLM does instead: one engine steps every S ms (0: as fast
as it can), and each step gives every running stream its next event as a write of its own,
round-robin, as a continuous-batching server's API server writes each request's chunk. A client
then receives about one event per read per stream, and pays a read's cost per token.

Run: `python -m client_sut.servers.emitter --port 0 --first-token-ms 20 --gap-ms 2`; it prints its URL
on the first line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import selectors
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httptools

from client_sut.eventloop import run_event_loop
from client_sut.measure.heap import HeapFreezer
from client_sut.measure.resources import raise_open_files
from client_sut.servers.emitter_dialects import (
    DIALECTS,
    HEALTH_PATHS,
    METRICS_PATHS,
    SPEECH,
    VLLM_STREAM,
    DialectStream,
    refusal,
)
from client_sut.servers.emitter_metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from client_sut.servers.emitter_metrics import EmitterMetrics

MODEL = "emitter"
FIRST_ID, ID_SPAN = 100, 3_000
TIMER_RESOLUTION_S = 0.001


@dataclass(frozen=True, slots=True)
class EmitterConfig:
    first_token_delay_s: float = 0.02
    token_gap_s: float = 0.002
    tokens_per_event: int = 1
    output_tokens: int | None = None  # None: the request's max_tokens
    model: str = MODEL
    max_model_len: int = 8192
    # Like a server without vLLM's return_token_ids: text only, in pieces that split words.
    text_only: bool = False
    # Fault injection: every `fault_every`-th request suffers `fault` (one of FAULTS).
    fault: str | None = None
    fault_every: int = 1
    stall_s: float = 5.0  # how long the stall and late_first_byte faults wait
    die_after: int | None = None  # the process exits at the first token of this request
    api_key: str | None = None  # when set, requests must carry it as a Bearer token
    # Like a server with K sequences in its batch: at most this many streams generate at once,
    # the rest wait for a slot in arrival order, and the wait counts in their first-token delay.
    # Capacity is then K / (first_token_delay + (tokens - 1) x gap) requests per second.
    max_running: int | None = None
    # None: one timer per stream (first_token_delay_s, then token_gap_s). A number: one engine
    # steps every this many seconds and writes each running stream's next event on its own; the
    # gap is then the step, and a stream joins the steps once its first-token delay has passed.
    engine_step_s: float | None = None
    dialect: str = "vllm"  # another server's dialect (emitter_dialects.DIALECTS)
    # Close the connection after each streamed response while saying keep-alive, as llama.cpp's
    # server does: a client that reuses it writes its next request into a closed connection.
    close_after_response: bool = False


# What each fault does; tests check the client classifies each one.
FAULTS = {
    "http500": "answer 500 with an error body",
    "http503": "answer 503 with an error body",
    "http429": "answer 429 with Retry-After: 1",
    "reset": "reset the connection after two tokens",
    "bad_json": "send an event whose data is not JSON",
    "bad_sse": "answer 200 with an HTML page instead of an event stream",
    "stall": "stop sending after the first token for stall_s seconds",
    "no_done": "close the stream after the tokens, with no usage and no [DONE]",
    "late_first_byte": "wait stall_s seconds before the response headers",
    "echo_auth": "answer 401 echoing the Authorization header it was sent",
}


TEXT_ONLY_ANSWER = "The flood hit the city. Officials said repairs would take weeks."
TEXT_ONLY_PIECE_CHARS = 2


def output_ids(prompt, count: int) -> list[int]:
    """Deterministic output ids for a prompt: tests can predict exactly what was streamed."""
    seed = zlib.crc32(json.dumps(prompt).encode())
    return [FIRST_ID + (seed + 7 * i) % ID_SPAN for i in range(count)]


# --- the dialect: each event as vLLM 0.32 frames it, formatted with bytes templates ---------------

# vLLM's completion choice echoes the prompt ids in the first chunk and null after it.
_CHOICE_END = {"completions": b',"logprobs":null,"finish_reason":%s,"stop_reason":null,'
                              b'"prompt_token_ids":%s%s}]}',
               "chat": b',"logprobs":null,"finish_reason":%s%s}]}'}


def _event_head(kind: str, response_id: str, model: str) -> bytes:
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    return (f'data: {{"id":"{response_id}","object":"{obj}","created":0,'
            f'"model":{json.dumps(model)},"choices":[{{"index":0,').encode()


def _token_event(head: bytes, kind: str, text: str, ids: list[int] | None,
                 finish: str | None, prompt_ids: bytes = b"null") -> bytes:
    text_json = json.dumps(text).encode() if '"' in text or "\\" in text else b'"%s"' % text.encode()
    content = b'"delta":{"content":%s}' % text_json if kind == "chat" else b'"text":%s' % text_json
    ids_part = b',"token_ids":[%s]' % b",".join(b"%d" % i for i in ids) if ids is not None else b""
    finish_part = b'"%s"' % finish.encode() if finish else b"null"
    if kind == "chat":
        return head + content + _CHOICE_END[kind] % (finish_part, ids_part) + b"\n\n"
    return head + content + _CHOICE_END[kind] % (finish_part, prompt_ids, ids_part) + b"\n\n"


def _middle_event_template(head: bytes, kind: str) -> bytes:
    """`_token_event` for an event that is neither the first nor the last, with `%s` for its
    text and its ids: formatted in one step (about a microsecond, against five), since an
    engine step formats one event per stream."""
    content = b'"delta":{"content":"%s"}' if kind == "chat" else b'"text":"%s"'
    ids_part = b',"token_ids":[%s]'
    end = (_CHOICE_END[kind] % (b"null", ids_part) if kind == "chat"
           else _CHOICE_END[kind] % (b"null", b"null", ids_part))
    return head.replace(b"%", b"%%") + content + end + b"\n\n"


def _usage_event(response_id: str, model: str, prompt_tokens: int, completion_tokens: int) -> bytes:
    body = {"id": response_id, "object": "text_completion", "created": 0, "model": model,
            "choices": [], "usage": {"prompt_tokens": prompt_tokens,
                                     "total_tokens": prompt_tokens + completion_tokens,
                                     "completion_tokens": completion_tokens}}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _role_event(head: bytes) -> bytes:
    return (head + b'"delta":{"role":"assistant","content":""},"logprobs":null,'
                   b'"finish_reason":null}]}\n\n')


DONE_EVENT = b"data: [DONE]\n\n"
BAD_JSON_EVENT = b'data: {"choices": [oops\n\n'


# --- HTTP/1.1 framing ----------------------------------------------------------------------------

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
LAST_CHUNK = b"0\r\n\r\n"


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _response(status: int, body: bytes, content_type: str = "application/json",
              extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}"
            f"\r\nContent-Length: {len(body)}\r\n{extra}\r\n")
    return head.encode() + body


def _json_response(status: int, obj, extra: str = "") -> bytes:
    return _response(status, json.dumps(obj).encode(), extra=extra)


@dataclass(slots=True)
class _Request:
    method: bytes
    path: bytes
    headers: dict[bytes, bytes]
    body: bytes
    keep_alive: bool
    arrival_ns: int  # when the read that completed it came in


class Emitter:
    """The application: routes, the log, the request counter. Shared by every connection."""

    def __init__(self, config: EmitterConfig) -> None:
        self.config = config
        # One entry per streamed request: arrival and the time each event was handed to the socket.
        self.log: list[dict] = []
        self.requests = 0
        self.metrics = EmitterMetrics(config.model)  # GET /metrics, in vLLM's names
        self.running = 0  # streams generating now (counted only with max_running)
        self.waiting: deque[Callable[[], bool]] = deque()  # streams waiting for a slot, FIFO
        self.engine = (None if config.engine_step_s is None
                       else _Engine(asyncio.get_running_loop(), config.engine_step_s))

    def admit(self, begin: Callable[[], bool]) -> None:
        """Starts a stream now, or when a slot frees up under max_running."""
        if self.config.max_running is None:
            begin()
        elif self.running < self.config.max_running:
            self.running += 1
            if not begin():
                self.release()
        else:
            self.waiting.append(begin)

    def release(self) -> None:
        """A stream ended (finished, or its client went away): the longest waiting one starts."""
        self.running -= 1
        while self.waiting and self.running < self.config.max_running:
            self.running += 1
            if self.waiting.popleft()():
                return
            self.running -= 1  # its client went away while it waited

    def unauthorized(self, request: _Request) -> bytes | None:
        presented = request.headers.get(b"authorization", b"").decode("latin-1")
        if self.config.api_key is None or presented == f"Bearer {self.config.api_key}":
            return None
        # Like a careless server, it echoes what it was given: clients must not log it.
        return _json_response(401, {"error": {"message": f"invalid credentials: {presented!r}",
                                              "code": 401}})

    def models(self) -> bytes:
        entry = {"id": self.config.model, "object": "model",
                 "owned_by": SPEECH[self.config.dialect].owned_by,
                 "max_model_len": self.config.max_model_len}
        if SPEECH[self.config.dialect].context_at_props:
            del entry["max_model_len"]
        return _json_response(200, {"object": "list", "data": [entry]})

    def props(self) -> bytes:
        """llama-server's /props: the context of one slot, which bounds a request."""
        return _json_response(200, {"default_generation_settings": {
            "n_ctx": self.config.max_model_len}, "total_slots": 1})

    def log_json(self) -> bytes:
        entries = [{**entry, "write_ns": entry["write_ns"].tolist()} for entry in self.log]
        return _response(200, json.dumps(entries).encode())

    def fault_for(self, number: int) -> str | None:
        return self.config.fault if number % self.config.fault_every == 0 else None


class _Stream:
    """One streamed response: its events written as they come due, each formatted only then
    (formatting all 128 of a response up front took ~0.8 ms, and a burst of arrivals queued
    behind it: a delay the record would not show)."""

    __slots__ = ("connection", "event", "count", "index", "first_due", "gap", "writes", "fault",
                 "number", "handle", "tail", "unsent", "holds_slot")

    def __init__(self, connection: _Connection, head: list[bytes],
                 event: Callable[[int], bytes], count: int,
                 tail: bytes, first_due: float, gap: float, writes: array, fault: str | None,
                 number: int) -> None:
        self.connection = connection
        self.unsent = head  # the response head (and chat's role chunk): out with what is due
        self.event = event  # the n-th chunk-framed token event
        self.count = count
        self.tail = tail  # usage, [DONE] and the last chunk
        self.index = 0
        self.first_due = first_due
        self.gap = gap
        self.writes = writes
        self.fault = fault
        self.number = number
        self.handle: asyncio.TimerHandle | None = None
        self.holds_slot = connection.emitter.config.max_running is not None

    def due(self, index: int) -> float:
        return self.first_due + index * self.gap

    def step(self) -> None:
        """Writes every event that has come due, then sleeps until the next one is due."""
        self.handle = None
        connection = self.connection
        transport = connection.transport
        if transport is None or transport.is_closing():
            return
        now = time.monotonic()
        while self.index < self.count and self.due(self.index) <= now:
            n = self.index
            if self.fault is not None and n in (1, 2):
                self._flush()  # what came due before the fault goes out first
                if self._inject(n):
                    return
            if n == 0 and self.number == connection.emitter.config.die_after:
                os._exit(0)  # killed mid-run: every open stream breaks at once
            self.index = n + 1
        finished = self.index == self.count
        self._flush(self.tail if finished else b"")
        if not finished:
            # Timers have millisecond resolution (libuv) and may fire early; a wait shorter than
            # that would spin the loop, starving the client of the CPU it is measured on. So an
            # event is never written early, and at most a millisecond late.
            wait = max(self.due(self.index) - time.monotonic(), TIMER_RESOLUTION_S)
            self.handle = connection.loop.call_later(wait, self.step)
            return
        self._release_slot()
        connection.finished(streamed=True)

    def advance(self) -> bool:
        """One engine step: the next event in a write of its own (with the response head before
        the first and the tail after the last). False when the stream is over."""
        connection = self.connection
        transport = connection.transport
        if transport is None or transport.is_closing():
            return False
        n = self.index
        if n == 0 and self.number == connection.emitter.config.die_after:
            os._exit(0)
        data = self.event(n)
        if self.unsent:
            data = b"".join(self.unsent) + data
            self.unsent = []
        self.index = n + 1
        finished = self.index == self.count
        if finished:
            data += self.tail
        stamp = time.perf_counter_ns()  # before the write, as in _flush
        self.writes.append(stamp)
        connection.emitter.metrics.wrote(self.number, n, n + 1, stamp)
        transport.write(data)
        if finished:
            self._release_slot()
            connection.finished(streamed=True)
        return not finished

    def _flush(self, tail: bytes = b"") -> None:
        """Everything due and not yet written goes out in one write, as a busy server's socket
        would carry it. Stamped just before the bytes go out: once write() returns the client
        may already have read them, and a later stamp could fall after their arrival."""
        start = len(self.writes)
        out = self.unsent + [self.event(n) for n in range(start, self.index)]
        if tail:
            out.append(tail)
        if self.index > start:
            stamp = time.perf_counter_ns()
            self.writes.extend([stamp] * (self.index - start))
            self.connection.emitter.metrics.wrote(self.number, start, self.index, stamp)
        if out:
            self.connection.transport.write(b"".join(out))
            self.unsent = []

    def _inject(self, n: int) -> bool:
        """Applies the fault due at event n; True when the stream is over."""
        transport = self.connection.transport
        if n == 2 and self.fault == "reset":
            _reset(transport)
            return True
        if n == 1 and self.fault == "bad_json":
            transport.write(_chunked(BAD_JSON_EVENT))
            self.fault = None
        if n == 1 and self.fault == "stall":
            self.fault = None
            self.first_due += self.connection.emitter.config.stall_s
            self.handle = self.connection.loop.call_later(self.due(n) - time.monotonic(),
                                                          self.step)
            return True
        return False

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self._release_slot()
        self.connection.emitter.metrics.dropped(self.number)

    def _release_slot(self) -> None:
        if self.holds_slot:
            self.holds_slot = False
            self.connection.emitter.release()


class _Engine:
    """vLLM's continuous batching, as far as a client sees it: every step, each running stream's
    next event goes out in a write of its own, in the order the streams joined.

    A stream whose first-token delay has not passed waits outside the batch. With a step of 0 the
    next step is queued behind the loop's I/O, so requests that arrived meanwhile join it; with
    nothing due the engine sleeps until the next first token is.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, step_s: float) -> None:
        self.loop = loop
        self.step_s = step_s
        self.batch: list[_Stream] = []
        self.prefill: list[_Stream] = []  # waiting out their first-token delay
        self.handle: asyncio.Handle | None = None
        self.next_step = 0.0

    def join(self, stream: _Stream) -> None:
        self.prefill.append(stream)
        if self.handle is None:
            self._schedule(time.monotonic())

    def step(self) -> None:
        now = time.monotonic()
        if now < self.next_step:  # the timer fired early
            self.handle = self.loop.call_later(TIMER_RESOLUTION_S, self.step)
            return
        if self.prefill:
            ready = [s for s in self.prefill if s.first_due <= now]
            if ready:
                self.prefill = [s for s in self.prefill if s.first_due > now]
                self.batch.extend(ready)
        # A stream that ends may start the next request on its connection: that one joins
        # `prefill`, not the list being walked.
        self.batch = [stream for stream in self.batch if stream.advance()]
        self.prefill = [s for s in self.prefill if s.connection.transport is not None]
        self.handle = None  # only now: a join during the step must not schedule a second one
        if self.batch:
            self.next_step = now + self.step_s
            self._schedule(time.monotonic())
        elif self.prefill:
            self.next_step = min(s.first_due for s in self.prefill)
            self._schedule(time.monotonic())

    def _schedule(self, now: float) -> None:
        wait = self.next_step - now
        if wait <= 0:
            self.handle = self.loop.call_soon(self.step)
        else:  # never early (see _Stream.step), at most a timer's resolution late
            self.handle = self.loop.call_later(max(wait, TIMER_RESOLUTION_S), self.step)


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed by httptools, answered one after another."""

    def __init__(self, emitter: Emitter) -> None:
        self.emitter = emitter
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[_Request] = deque()
        self.active: _Stream | asyncio.TimerHandle | None = None
        self.keep_alive = True
        self._url = b""
        self._read_ns = 0
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        # A request arrives with the read that completes it: stamped before any work on it, so
        # that time the emitter spends on earlier requests counts in the truth it records.
        self._read_ns = time.perf_counter_ns()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(_json_response(400, {"error": {"message": "bad request"}}))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        # The client went away (a timeout, an interrupted run): stop writing to it.
        if self.active is not None:
            self.active.cancel()
            self.active = None
        self.transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        path = self._url.split(b"?", 1)[0]
        self.pending.append(_Request(self.parser.get_method(), path, self._headers,
                                     b"".join(self._body), self.parser.should_keep_alive(),
                                     self._read_ns))
        if self.active is None:
            self._next()

    # answering
    def _next(self) -> None:
        while self.pending and self.active is None and self.transport is not None:
            request = self.pending.popleft()
            self.keep_alive = request.keep_alive
            self._answer(request)

    def finished(self, streamed: bool = False) -> None:
        """The response in progress is complete: on to the next request, or close."""
        self.active = None
        if self.transport is None:
            return
        if not self.keep_alive or (streamed and self.emitter.config.close_after_response):
            self.transport.close()
            return
        self._next()

    def _reply(self, data: bytes) -> None:
        self.transport.write(data)
        self.finished()

    def _answer(self, request: _Request) -> None:
        emitter = self.emitter
        self.active = _BUSY
        route = (request.method, request.path)
        if route == (b"GET", HEALTH_PATHS.get(emitter.config.dialect)):
            return self._reply(_response(200, b""))
        if route == (b"GET", b"/emitter/log"):
            return self._reply(emitter.log_json())
        if route == (b"GET", METRICS_PATHS[emitter.config.dialect]):
            return self._reply(_response(200, emitter.metrics.exposition(),
                                         METRICS_CONTENT_TYPE))
        speech = SPEECH[emitter.config.dialect]
        if route == (b"GET", b"/metrics") and speech.json_stats_at_metrics:
            return self._reply(_json_response(200, []))  # TRT-LLM's iteration stats are JSON
        if route == (b"GET", b"/v1/models"):
            return self._reply(emitter.unauthorized(request) or emitter.models())
        if route == (b"GET", b"/props") and speech.context_at_props:
            return self._reply(emitter.props())
        if route == (b"GET", b"/v1/metadata") and speech.metadata:
            return self._reply(_json_response(200, {"modelInfo": [
                {"shortName": emitter.config.model}], "repository_override": ""}))
        kinds = {b"/v1/completions": "completions", b"/v1/chat/completions": "chat"}
        if request.method != b"POST" or request.path not in kinds:
            return self._reply(_json_response(404, {"error": {"message": "not found"}}))
        self._stream(request, kinds[request.path])

    def _stream(self, request: _Request, kind: str) -> None:
        emitter = self.emitter
        config = emitter.config
        denied = emitter.unauthorized(request)
        if denied is not None:
            return self._reply(denied)
        emitter.requests += 1
        number = emitter.requests
        fault = emitter.fault_for(number)
        if fault in ("http500", "http503"):
            return self._reply(_json_response(
                int(fault[4:]), {"error": {"message": "injected failure", "code": 500}}))
        if fault == "http429":
            return self._reply(_json_response(
                429, {"error": {"message": "rate limited", "code": 429}}, "Retry-After: 1\r\n"))
        if fault == "echo_auth":
            presented = request.headers.get(b"authorization", b"").decode("latin-1")
            return self._reply(_json_response(401, {"error": {"message": "rejected: "
                                                                         + presented}}))
        if fault == "bad_sse":
            return self._reply(_response(200, b"<html><body>502 Bad Gateway</body></html>",
                                         "text/html"))
        try:
            body = json.loads(request.body)
        except ValueError:
            return self._reply(_json_response(400, {"error": {"message": "body is not JSON"}}))
        refused = None if config.dialect in VLLM_STREAM else refusal(config.dialect, kind, body)
        if refused is not None:
            return self._reply(_response(refused.status, refused.body, refused.content_type))
        prompt = body.get("messages") if kind == "chat" else body.get("prompt")
        count = config.output_tokens or int(body.get("max_tokens", 16))
        response_id = f"cmpl-emitter-{number}"
        head = _event_head(kind, response_id, config.model)
        step = config.tokens_per_event
        if config.text_only:
            pieces = [TEXT_ONLY_ANSWER[i:i + TEXT_ONLY_PIECE_CHARS]
                      for i in range(0, len(TEXT_ONLY_ANSWER), TEXT_ONLY_PIECE_CHARS)]
            count, ids = len(pieces), []
        else:
            ids = output_ids(prompt, count)
        events = -(-count // step)
        echoed = json.dumps(prompt, separators=(",", ":")).encode() if isinstance(
            prompt, list) else b"null"
        middle = _middle_event_template(head, kind)

        def vllm_event(n: int) -> bytes:
            first, finish = n * step, "length" if n == events - 1 else None
            if 0 < n and finish is None and not config.text_only:
                if step == 1:
                    token = ids[n]
                    body = middle % (b" t%d" % token, b"%d" % token)
                else:
                    group = ids[first:first + step]
                    body = middle % (b"".join(b" t%d" % i for i in group),
                                     b",".join(b"%d" % i for i in group))
                return b"%x\r\n%s\r\n" % (len(body), body)
            if config.text_only:
                text, group = "".join(pieces[first:first + step]), None
            else:
                group = ids[first:first + step]
                text = "".join(f" t{i}" for i in group)
            return _chunked(_token_event(head, kind, text, group, finish,
                                         echoed if n == 0 else b"null"))

        prompt_tokens = len(prompt) if isinstance(prompt, list) else 1
        tail = b"" if fault == "no_done" else _chunked(
            _usage_event(response_id, config.model, prompt_tokens, count) + DONE_EVENT)
        before_first = _chunked(_role_event(head)) if kind == "chat" else b""
        event = vllm_event
        if config.dialect not in VLLM_STREAM:  # another server's framing, event by event
            # A text prompt's tokens are the server's to count: this emitter has no tokenizer.
            spoken = DialectStream(config.dialect, kind, response_id, config.model, body, ids,
                                   step, prompt_tokens if isinstance(prompt, list) else None)
            first = spoken.before_first_token()
            before_first = _chunked(first) if first else b""
            tail = b"" if fault == "no_done" else _chunked(spoken.tail())
            event = functools.partial(_spoken_event, spoken)
        writes = array("q")
        emitter.log.append({"arrival_ns": request.arrival_ns, "response_id": response_id,
                            "write_ns": writes, "token_ids": ids,
                            "tokens_per_event": config.tokens_per_event})
        emitter.metrics.accepted(number, request.arrival_ns, prompt_tokens, count, step)

        def begin() -> bool:
            if self.transport is None:
                emitter.metrics.dropped(number)
                return False  # the client went away before its stream began
            response_head = [STREAM_HEAD]
            if before_first:  # no token: a client must not take it as the first
                response_head.append(before_first)
            stream = _Stream(self, response_head, event, events, tail + LAST_CHUNK,
                             time.monotonic() + config.first_token_delay_s, config.token_gap_s,
                             writes, fault, number)
            self.active = stream
            if emitter.engine is None:
                stream.step()
            else:
                emitter.engine.join(stream)
            return True

        if fault == "late_first_byte":
            self.active = self.loop.call_later(config.stall_s, emitter.admit, begin)
        else:
            emitter.admit(begin)


def _spoken_event(spoken: DialectStream, n: int) -> bytes:
    return _chunked(spoken.token_event(n))


class _Busy:
    """Marks a connection whose answer is being written synchronously."""

    def cancel(self) -> None:
        pass


_BUSY = _Busy()


def _reset(transport: asyncio.Transport) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed proxy or server would."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def serve(config: EmitterConfig, host: str, port: int,
                ssl_context: ssl.SSLContext | None = None) -> tuple[asyncio.Server, str]:
    loop = asyncio.get_running_loop()
    emitter = Emitter(config)
    # A deep accept queue: a load test opens thousands of connections at once.
    server = await loop.create_server(lambda: _Connection(emitter), host, port, ssl=ssl_context,
                                      backlog=16384)
    bound = server.sockets[0].getsockname()  # the real port when port 0 was asked
    return server, f"{'https' if ssl_context else 'http'}://{host}:{bound[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Loopback token emitter (vLLM dialect).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first-token-ms", type=float, default=20.0)
    parser.add_argument("--gap-ms", type=float, default=2.0)
    parser.add_argument("--tokens-per-event", type=int, default=1)
    parser.add_argument("--output-tokens", type=int, default=None)
    parser.add_argument("--text-only", action="store_true",
                        help="send text without token ids, in pieces that split words")
    parser.add_argument("--fault", choices=sorted(FAULTS),
                        help="; ".join(f"{k}: {v}" for k, v in FAULTS.items()))
    parser.add_argument("--fault-every", type=int, default=1, metavar="N",
                        help="the fault hits every N-th request (default: every one)")
    parser.add_argument("--stall-s", type=float, default=5.0)
    parser.add_argument("--die-after", type=int, metavar="N",
                        help="exit at the first token of the N-th request")
    parser.add_argument("--api-key", help="require this Bearer token")
    parser.add_argument("--max-model-len", type=int, default=8192,
                        help="the context length /v1/models reports")
    parser.add_argument("--max-running", type=int, metavar="K",
                        help="at most K streams generate at once, the rest wait in arrival "
                             "order (a server's batch): capacity K / (first-token delay + "
                             "(tokens - 1) x gap) requests/s")
    parser.add_argument("--engine-step-ms", type=float, metavar="S",
                        help="stream as vLLM does: an engine steps every S ms (0: as fast as it "
                             "can) and each running stream gets its next event as a write of "
                             "its own, round-robin; --gap-ms is then ignored")
    parser.add_argument("--dialect", choices=DIALECTS, default="vllm",
                        help="answer as this server does (its refusals and stream framing; "
                             "see client_sut/servers/emitter_dialects.py)")
    parser.add_argument("--close-after-response", action="store_true",
                        help="close each connection after its streamed response, though the "
                             "response said keep-alive (as llama.cpp's server does)")
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate")
    parser.add_argument("--tls-key", help="the certificate's PEM private key")
    args = parser.parse_args(argv)
    if args.engine_step_ms is not None and (args.fault or args.engine_step_ms < 0):
        parser.error("--engine-step-ms takes a step of 0 ms or more, and no --fault")
    if args.dialect != "vllm" and (args.text_only or args.engine_step_ms is not None):
        parser.error("--dialect speaks another server: no --text-only or --engine-step-ms")
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    config = EmitterConfig(args.first_token_ms / 1000, args.gap_ms / 1000, args.tokens_per_event,
                           args.output_tokens, text_only=args.text_only, fault=args.fault,
                           fault_every=args.fault_every, stall_s=args.stall_s,
                           die_after=args.die_after, api_key=args.api_key,
                           max_model_len=args.max_model_len, max_running=args.max_running,
                           engine_step_s=None if args.engine_step_ms is None
                           else args.engine_step_ms / 1000, dialect=args.dialect,
                           close_after_response=args.close_after_response)

    raise_open_files()  # as a real server's unit file does: thousands of streams at once

    async def run() -> None:
        server, url = await serve(config, args.host, args.port, tls)
        freezer = HeapFreezer(asyncio.get_running_loop(), growing=True)  # its log: every request
        print(url, flush=True)
        try:
            async with server:
                await server.serve_forever()
        finally:
            freezer.cancel()

    try:
        run_event_loop(run())
    except KeyboardInterrupt:
        pass
    return 0


def process_cpu_s(pid: int) -> float:
    """CPU time a process has used so far, all its threads (Linux /proc; OSError once gone)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class EmitterProcess:
    """The emitter in a process of its own (as a real server is), for calibration, benchmarks
    and tests: started on a free port, its URL read from its first line of output."""

    def __init__(self, *args: str, start_timeout_s: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "client_sut.servers.emitter", "--port", "0", *args],
            stdout=subprocess.PIPE, text=True)
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        if not selector.select(start_timeout_s):
            self.stop()
            raise RuntimeError(f"the emitter printed no URL within {start_timeout_s:g} s")
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            raise RuntimeError(f"the emitter exited with {self.process.wait(5)} before it "
                               f"printed its URL")

    def log(self) -> list[dict]:
        """What it wrote, request by request (GET /emitter/log)."""
        # Our own loopback emitter, maybe with a test's self-signed certificate: not verified.
        context = ssl._create_unverified_context() if self.url.startswith("https") else None
        with urllib.request.urlopen(self.url + "/emitter/log", timeout=120,
                                    context=context) as response:
            return json.load(response)

    def cpu_seconds(self) -> float:
        """CPU time the emitter has used so far (Linux /proc)."""
        return process_cpu_s(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


if __name__ == "__main__":
    sys.exit(main())
