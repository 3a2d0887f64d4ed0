"""Checks each endpoint before the run: reachable, OpenAI-compatible, serving the model.

Everything found wrong here is a UsageError (exit 2): no measured request has been sent yet.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from client_sut.errors import UsageError
from client_sut.security import Credentials

PROBE_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class ServedModel:
    name: str
    max_model_len: int | None  # vLLM reports it, llama.cpp at /props; other servers may not
    context_from: str = "max_model_len"  # where the server said it: "max_model_len", "/props"


async def _models(session: aiohttp.ClientSession, endpoint: str) -> list[ServedModel]:
    url = f"{endpoint}/v1/models"
    try:
        async with session.get(url) as response:
            if response.status in (401, 403):
                raise UsageError(f"{url} answered {response.status}: the server wants an API key; "
                                 f"set OPENAI_API_KEY or pass --api-key-env")
            if response.status != 200:
                raise UsageError(f"{url} answered HTTP {response.status}; is {endpoint} an "
                                 f"OpenAI-compatible server (vLLM: python -m "
                                 f"vllm.entrypoints.openai.api_server)?")
            payload = await response.json(content_type=None)
    except aiohttp.ClientConnectorCertificateError as exc:
        raise UsageError(f"TLS certificate of {endpoint} not trusted ({exc.certificate_error}); "
                         f"pass --ca-bundle with its CA, or --insecure to skip verification"
                         ) from None
    except aiohttp.ClientConnectorError as exc:
        raise UsageError(f"cannot reach {endpoint} ({exc.os_error}); start the server or fix "
                         f"--endpoint") from None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        raise UsageError(f"{url} gave no usable answer ({type(exc).__name__}: {exc}); is "
                         f"{endpoint} an OpenAI-compatible server?") from None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list) or not all(isinstance(m, dict) and "id" in m for m in data):
        raise UsageError(f"{url} did not return an OpenAI model list; is {endpoint} an "
                         f"OpenAI-compatible server?")
    if any(m.get("max_model_len") for m in data):
        return [ServedModel(m["id"], m.get("max_model_len")) for m in data]
    context = await _props_context(session, endpoint)
    return [ServedModel(m["id"], context, "/props") for m in data]


async def _props_context(session: aiohttp.ClientSession, endpoint: str) -> int | None:
    """llama-server's context per request (one slot's: the whole context over its slots) from
    /props, where /v1/models does not say it; None where the server has no /props."""
    try:
        async with session.get(f"{endpoint}/props") as response:
            if response.status != 200:
                return None
            props = await response.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None


async def probe_endpoints(endpoints: tuple[str, ...], model: str | None,
                          credentials: Credentials) -> ServedModel:
    """The served model all endpoints agree on: `model`, or the first one of the first endpoint."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    connector = aiohttp.TCPConnector(ssl=credentials.ssl_context())
    async with aiohttp.ClientSession(timeout=timeout, connector=connector,
                                     headers=credentials.headers) as session:
        try:
            listings = await asyncio.gather(*(_models(session, e) for e in endpoints))
        except UsageError as exc:  # the server's words may echo the key
            raise UsageError(credentials.redact(str(exc))) from None
    name = model
    limits: list[ServedModel] = []
    for endpoint, served in zip(endpoints, listings):
        if not served:
            raise UsageError(f"{endpoint} serves no model")
        name = name or served[0].name
        match = next((m for m in served if m.name == name), None)
        if match is None:
            names = ", ".join(m.name for m in served[:5])
            raise UsageError(f"{endpoint} does not serve model {name!r} (it serves: {names}); "
                             f"fix --model")
        if match.max_model_len:
            limits.append(match)
    # The smallest context of all endpoints bounds the prompts.
    smallest = min(limits, key=lambda m: m.max_model_len, default=ServedModel(name, None))
    return ServedModel(name, smallest.max_model_len, smallest.context_from)
