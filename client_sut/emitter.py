"""A loopback token emitter that speaks vLLM's streaming dialect with known timing.

It answers `/v1/completions` and `/v1/chat/completions` with `stream: true` like vLLM 0.32 does
(`token_ids` per choice, a usage-only chunk, `[DONE]`; chat opens with a role-only chunk), after
a known first-token delay and with a known gap between events. It records when it actually wrote
each event (`GET /emitter/log`): under load a Python emitter writes late, so the truth a client is
judged against is what the emitter did, not its schedule.

Run: `python -m client_sut.emitter --port 0 --first-token-ms 20 --gap-ms 2`; it prints its URL
on the first line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import struct
import sys
import time
import zlib
from dataclasses import dataclass

from aiohttp import web

MODEL = "emitter"
FIRST_ID, ID_SPAN = 100, 3_000


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


def _chunk(kind: str, ids: list[int] | None, finish: str | None, text: str | None = None) -> bytes:
    """One event; with `text` and no ids it is what a server without token ids sends."""
    if text is None:
        text = "".join(f" t{i}" for i in ids)
    if kind == "chat":
        choice = {"index": 0, "delta": {"content": text}, "logprobs": None,
                  "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish,
                  "stop_reason": None}
        obj = "text_completion"
    if ids is not None:
        choice["token_ids"] = ids
    body = {"id": "cmpl-emitter", "object": obj, "created": 0, "model": MODEL,
            "choices": [choice]}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _usage_chunk(prompt_tokens: int, completion_tokens: int) -> bytes:
    body = {"id": "cmpl-emitter", "object": "text_completion", "created": 0, "model": MODEL,
            "choices": [], "usage": {"prompt_tokens": prompt_tokens,
                                     "total_tokens": prompt_tokens + completion_tokens,
                                     "completion_tokens": completion_tokens}}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


ROLE_CHUNK = (b'data: {"id":"cmpl-emitter","object":"chat.completion.chunk","created":0,'
              b'"model":"emitter","choices":[{"index":0,"delta":{"role":"assistant",'
              b'"content":""},"logprobs":null,"finish_reason":null}]}\n\n')


class Emitter:
    def __init__(self, config: EmitterConfig) -> None:
        self.config = config
        # One entry per request: arrival and the time each event was handed to the socket.
        self.log: list[dict] = []
        self.requests = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/emitter/log", self.get_log)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def models(self, request: web.Request) -> web.Response:
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        return web.json_response({"object": "list", "data": [
            {"id": self.config.model, "object": "model", "owned_by": "client_sut",
             "max_model_len": self.config.max_model_len}]})

    async def get_log(self, request: web.Request) -> web.Response:
        return web.json_response(self.log)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._guarded(request, "completions")

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._guarded(request, "chat")

    async def _guarded(self, request: web.Request, kind: str) -> web.StreamResponse:
        try:
            return await self._stream(request, kind)
        except ConnectionResetError:  # the client went away (a timeout, an interrupted run)
            return web.Response(status=499)

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        presented = request.headers.get("Authorization", "")
        if self.config.api_key is None or presented == f"Bearer {self.config.api_key}":
            return None
        # Like a careless server, it echoes what it was given: clients must not log it.
        return web.json_response({"error": {"message": f"invalid credentials: {presented!r}",
                                            "code": 401}}, status=401)

    def _fault_for(self, number: int) -> str | None:
        return self.config.fault if number % self.config.fault_every == 0 else None

    async def _stream(self, request: web.Request, kind: str) -> web.StreamResponse:
        arrival_ns = time.perf_counter_ns()
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        self.requests += 1
        number = self.requests
        fault = self._fault_for(number)
        if fault in ("http500", "http503"):
            return web.json_response({"error": {"message": "injected failure", "code": 500}},
                                     status=int(fault[4:]))
        if fault == "http429":
            return web.json_response({"error": {"message": "rate limited", "code": 429}},
                                     status=429, headers={"Retry-After": "1"})
        if fault == "echo_auth":
            return web.json_response({"error": {"message": "rejected: "
                                                + request.headers.get("Authorization", "")}},
                                     status=401)
        if fault == "bad_sse":
            return web.Response(text="<html><body>502 Bad Gateway</body></html>",
                                content_type="text/html")
        if fault == "late_first_byte":
            await asyncio.sleep(self.config.stall_s)
        body = await request.json()
        prompt = body.get("messages") if kind == "chat" else body.get("prompt")
        count = self.config.output_tokens or int(body.get("max_tokens", 16))
        ids = output_ids(prompt, count)
        pieces: list[str] = []
        if self.config.text_only:
            pieces = [TEXT_ONLY_ANSWER[i:i + TEXT_ONLY_PIECE_CHARS]
                      for i in range(0, len(TEXT_ONLY_ANSWER), TEXT_ONLY_PIECE_CHARS)]
            count, ids = len(pieces), []
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        writes: list[int] = []
        entry = {"arrival_ns": arrival_ns, "write_ns": writes, "token_ids": ids,
                 "tokens_per_event": self.config.tokens_per_event}
        self.log.append(entry)
        if kind == "chat":
            await response.write(ROLE_CHUNK)  # no token: a client must not take it as the first
        loop = asyncio.get_running_loop()
        start = loop.time()
        step = self.config.tokens_per_event
        for n, first in enumerate(range(0, count, step)):
            due = start + self.config.first_token_delay_s + n * self.config.token_gap_s
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if n == 2 and fault == "reset":
                _reset(request)
                return response
            if n == 1 and fault == "bad_json":
                await response.write(b"data: {\"choices\": [oops\n\n")
            if n == 1 and fault == "stall":
                await asyncio.sleep(self.config.stall_s)
            if n == 0 and number == self.config.die_after:
                os._exit(0)  # killed mid-run: every open stream breaks at once
            finish = "length" if first + step >= count else None
            if pieces:
                event = _chunk(kind, None, finish, "".join(pieces[first:first + step]))
            else:
                event = _chunk(kind, ids[first:first + step], finish)
            # Stamped just before the bytes go out: once write() returns the client may already
            # have read them, and a stamp after it could fall later than their arrival.
            writes.append(time.perf_counter_ns())
            await response.write(event)
        if fault != "no_done":
            prompt_tokens = len(prompt) if isinstance(prompt, list) else 1
            await response.write(_usage_chunk(prompt_tokens, count) + b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _reset(request: web.Request) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed proxy or server would."""
    sock = request.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.transport.abort()


async def serve(config: EmitterConfig, host: str, port: int,
                ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(Emitter(config).app(), access_log=None)
    await runner.setup()
    # A deep accept queue: a load test opens thousands of connections at once.
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=16384)
    await site.start()
    bound = site._server.sockets[0].getsockname()  # the real port when port 0 was asked
    return runner, f"{'https' if ssl_context else 'http'}://{host}:{bound[1]}"


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
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate")
    parser.add_argument("--tls-key", help="the certificate's PEM private key")
    args = parser.parse_args(argv)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    config = EmitterConfig(args.first_token_ms / 1000, args.gap_ms / 1000, args.tokens_per_event,
                           args.output_tokens, text_only=args.text_only, fault=args.fault,
                           fault_every=args.fault_every, stall_s=args.stall_s,
                           die_after=args.die_after, api_key=args.api_key,
                           max_model_len=args.max_model_len)

    async def run() -> None:
        runner, url = await serve(config, args.host, args.port, tls)
        print(url, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
