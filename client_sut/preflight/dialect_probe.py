"""Before a run: what each endpoint accepts of the client's request, and where its answer puts
the generated ids and the usage (the rules: `client_sut/dialect.py`).

One short request (PROBE_TOKENS tokens) with everything the client sends, repeated without each
field the server refuses (HTTP 400/422 naming it) and with the prompt as text when it refuses
token ids; then what the server says of itself (`/version`, `/v1/models` owned_by, the Server
header, NIM's `/v1/metadata`) or its refusals name its family, and with it what it silently
ignores. A refusal it cannot read is a UsageError (nothing measured has been sent yet); a probe
request that fails otherwise (a server error, a broken stream) teaches nothing, and what the
family is known to take is assumed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace

import aiohttp

from client_sut.dialect import (
    IDS_LOGPROBS,
    KNOWN,
    OPTIONAL_FIELDS,
    Capabilities,
    Dialect,
    SelfDescription,
    counted_prompt_tokens,
    dialect_warnings,
    family,
    guess_family,
    refusal_message,
    refused_field,
    refuses_token_prompt,
    stream_capabilities,
    table_lines,
)
from client_sut.errors import UsageError
from client_sut.preflight.endpoints import probe_endpoints
from client_sut.measure.sse import SseScanner
from client_sut.request import Api, GenerationParams, request_body
from client_sut.security import Credentials

PROBE_TOKENS = 2
# `endpoints --describe`, which has no tokenizer: a few ids any vocabulary has, and a short text.
PROBE_IDS = (1, 2, 3, 4)
PROBE_TEXT = "Summarize: the town library reopened on Saturday after a year of repairs."
PROBE_TIMEOUT_S = 60.0  # a cold server compiles on its first request
MESSAGE_CHARS = 300


async def _get_json(session: aiohttp.ClientSession,
                    url: str) -> tuple[dict | None, dict[str, str]]:
    """A small JSON document and the response's headers (None, {} where there is none)."""
    try:
        async with session.get(url) as response:
            headers = {name.lower(): value for name, value in response.headers.items()}
            if response.status != 200:
                return None, headers
            return await response.json(content_type=None), headers
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None, {}


async def _self_description(session: aiohttp.ClientSession, endpoint: str,
                            model: str) -> SelfDescription:
    versions, _ = await _get_json(session, f"{endpoint}/version")
    models, headers = await _get_json(session, f"{endpoint}/v1/models")
    metadata, _ = await _get_json(session, f"{endpoint}/v1/metadata")
    entry = next((m for m in (models or {}).get("data", [])
                  if isinstance(m, dict) and m.get("id") == model), {})
    version = versions.get("version") if isinstance(versions, dict) else None
    return SelfDescription(entry.get("owned_by"), headers.get("server"),
                           version if isinstance(version, str) else None,
                           tuple(headers), tuple(entry), isinstance(metadata, dict))


class _Unanswered(Exception):
    """The probe learnt nothing from this answer (a server error, a broken stream)."""


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, str]:
    try:
        async with session.post(url, data=body,
                                headers={"Content-Type": "application/json"}) as response:
            return response.status, await response.text(errors="replace")
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise _Unanswered(f"the probe request failed ({type(exc).__name__})") from None


def _chunks(text: str) -> list[dict]:
    chunks = []
    for payload in SseScanner().feed(text.encode() + b"\n\n"):
        if payload.strip() == b"[DONE]":
            continue
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise _Unanswered("the probe's answer held an event that is not JSON") from None
        if isinstance(chunk, dict) and chunk.get("error") is not None:
            raise _Unanswered("the probe's answer was an error event")
        if isinstance(chunk, dict):
            chunks.append(chunk)
    if not chunks:
        raise _Unanswered("the probe's answer held no event")
    return chunks


async def _probe_one(session: aiohttp.ClientSession, endpoint: str, model: str, api: Api,
                     params: GenerationParams, prompt_ids: tuple[int, ...] | None,
                     prompt_text: str, prompt_length: int | None, named: str | None) -> Dialect:
    said = await _self_description(session, endpoint, model)
    said_family, version = family(said), said.version
    evidence = [f"{name}: {value}" for name, value in (("owned_by", said.owned_by),
                                                       ("Server", said.server),
                                                       ("version", version)) if value]
    if named is not None:
        return Dialect(named, KNOWN[named], version, "--dialect", tuple(evidence),
                       warnings=dialect_warnings(named, None, None))
    refused: list[str] = []
    refusals: list[str] = []
    token_prompt = api is Api.COMPLETIONS and prompt_ids is not None
    short = replace(params, max_tokens=PROBE_TOKENS)
    extra = KNOWN[said_family].extra if said_family in KNOWN else ()
    sent = 0
    unanswered: _Unanswered | None = None
    try:
        for sent in range(1, len(OPTIONAL_FIELDS) + 3):
            body = request_body(api, model, short,
                                prompt_ids=prompt_ids if token_prompt else None,
                                prompt_text=prompt_text, omit=tuple(refused), extra=extra)
            status, text = await _post(session, endpoint + api.path, body)
            if status == 200:
                chunks = _chunks(text)
                break
            if status not in (400, 422):  # not a refusal of the request: nothing learnt
                raise _Unanswered(f"the probe request got HTTP {status}")
            message = " ".join(refusal_message(text).split())[:MESSAGE_CHARS]
            refusals.append(message)
            name = refused_field(message, tuple(f for f in OPTIONAL_FIELDS if f not in refused))
            if name is not None:
                refused.append(name)
                evidence.append(f"HTTP {status} refusing {name}")
            elif token_prompt and refuses_token_prompt(message):
                token_prompt = False
                evidence.append(f"HTTP {status} refusing a prompt of token ids")
            else:
                raise UsageError(f"{endpoint} refused the client's request (HTTP {status}: "
                                 f"{message}); if it is a server of a known kind, name it with "
                                 f"--dialect")
        else:
            raise UsageError(f"{endpoint} kept refusing the client's request: {refusals[-1]}")
    except _Unanswered as exc:
        unanswered = exc
    name = said_family or guess_family(tuple(refusals)) or "unknown"
    if unanswered is not None:
        # A server failing or breaking a request is no answer about its dialect: what its kind
        # is known to take is assumed, and the measured requests show the failures.
        known = KNOWN.get(name, Capabilities())
        assumed = replace(known, refused=tuple(dict.fromkeys((*known.refused, *refused))),
                          token_prompt=known.token_prompt and token_prompt)
        return Dialect(name, assumed, version, "assumed",
                       (*evidence, f"{unanswered}: what a {name} server takes is assumed"),
                       sent, dialect_warnings(name, None, None))
    ids, usage, role_chunk = stream_capabilities(chunks)
    ignored = KNOWN[name].ignored if name in KNOWN else ()
    warnings = dialect_warnings(name, prompt_length if api is Api.COMPLETIONS else None,
                                counted_prompt_tokens(chunks))
    return Dialect(name, Capabilities(token_prompt, tuple(refused), ignored, ids, usage,
                                      role_chunk, extra if ids == IDS_LOGPROBS else ()),
                   version, "probe", tuple(evidence), sent, warnings)


async def probe_dialects(endpoints: Sequence[str], model: str, api: Api,
                         params: GenerationParams, prompt_ids: tuple[int, ...] | None,
                         prompt_text: str, credentials: Credentials, named: str | None = None,
                         prompt_length: int | None = None) -> dict[str, Dialect]:
    """Each endpoint's dialect (`named`: the user's --dialect, then only the server's own words
    are read). `prompt_length`: the prompt's tokens as the reference tokenizer counts them (BOS
    included), to tell a server that counts it otherwise."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    connector = aiohttp.TCPConnector(ssl=credentials.ssl_context())
    async with aiohttp.ClientSession(timeout=timeout, connector=connector,
                                     headers=credentials.headers) as session:
        try:
            found = await asyncio.gather(*(
                _probe_one(session, url, model, api, params, prompt_ids, prompt_text,
                           prompt_length, named)
                for url in endpoints))
        except UsageError as exc:  # the server's words may echo the key
            raise UsageError(credentials.redact(str(exc))) from None
    return dict(zip(endpoints, found))


def one_request_shape(dialects: dict[str, Dialect]) -> Capabilities:
    """The capabilities every endpoint shares: one run sends one request shape (a deployment's
    replicas are one kind of server)."""
    shapes = {url: (d.capabilities.token_prompt, d.capabilities.refused, d.capabilities.extra)
              for url, d in dialects.items()}
    if len(set(shapes.values())) > 1:
        raise UsageError("the endpoints take different requests ("
                         + "; ".join(f"{url}: {d.name}" for url, d in dialects.items())
                         + "); benchmark each kind of server in a run of its own")
    return next(iter(dialects.values())).capabilities


def describe_endpoints(endpoints: Sequence[str], model: str | None, api: Api,
                       credentials: Credentials, named: str | None) -> list[str]:
    """`client-sut endpoints --describe`: the table of what each server is and takes."""
    served = asyncio.run(probe_endpoints(tuple(endpoints), model, credentials))
    dialects = asyncio.run(probe_dialects(
        endpoints, served.name, api, GenerationParams(),
        PROBE_IDS if api is Api.COMPLETIONS else None, PROBE_TEXT, credentials, named))
    return table_lines(dialects)
