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

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/emitter/log", self.get_log)
        app.router.add_post("/emitter/reset", self.reset)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.config.model, "object": "model", "owned_by": "client_sut",
             "max_model_len": self.config.max_model_len}]})

    async def get_log(self, request: web.Request) -> web.Response:
        return web.json_response(self.log)

    async def reset(self, request: web.Request) -> web.Response:
        self.log = []
        return web.json_response({"ok": True})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, "completions")

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, "chat")

    async def _stream(self, request: web.Request, kind: str) -> web.StreamResponse:
        arrival_ns = time.perf_counter_ns()
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
            finish = "length" if first + step >= count else None
            if pieces:
                await response.write(_chunk(kind, None, finish, "".join(pieces[first:first + step])))
            else:
                await response.write(_chunk(kind, ids[first:first + step], finish))
            writes.append(time.perf_counter_ns())
        prompt_tokens = len(prompt) if isinstance(prompt, list) else 1
        await response.write(_usage_chunk(prompt_tokens, count) + b"data: [DONE]\n\n")
        await response.write_eof()
        return response


async def serve(config: EmitterConfig, host: str, port: int) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(Emitter(config).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()  # the real port when port 0 was asked
    return runner, f"http://{host}:{bound[1]}"


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
    args = parser.parse_args(argv)
    config = EmitterConfig(args.first_token_ms / 1000, args.gap_ms / 1000, args.tokens_per_event,
                           args.output_tokens, text_only=args.text_only)

    async def run() -> None:
        runner, url = await serve(config, args.host, args.port)
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
