"""Is anybody serving at an endpoint? One GET of its health path, outside any measured run.

Used before a run is started against a server (a search never starts a probe against a server
that does not answer), while a run goes on (the scraper asks once a round) and while a search
waits for a server to come back (`--wait-for-server`). Blocking, on purpose: it runs between
runs or in a process of its own, never on a measuring event loop.

`/health` answers 200 once vLLM (and SGLang, TGI, llama.cpp) can serve; a server without it
(404) is asked `/v1/models` instead, which every OpenAI-compatible server has. A server whose
kind keeps its health elsewhere is asked there alone (`dialect.SERVER_PATHS`: NIM's
`/v1/health/ready`, a LiteLLM proxy's `/health/liveliness`, since its `/health` calls every
model behind it).
"""

from __future__ import annotations

import functools
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from client_sut.measure.transport import client_ssl_context
from client_sut.records import Answer, HealthCheck
from client_sut.security import Credentials

HEALTH_PATHS = ("/health", "/v1/models")
CHECK_TIMEOUT_S = 2.0
WAIT_POLL_S = 1.0


class _Checker:
    def __init__(self, credentials: Credentials, timeout_s: float) -> None:
        self._headers = credentials.headers
        self._timeout_s = timeout_s
        self._context = client_ssl_context(credentials.ssl_context())

    def ask(self, url: str, paths: tuple[str, ...]) -> tuple[Answer, str] | None:
        """The health paths in turn; None when the server has none of them (404)."""
        for path in paths:
            request = urllib.request.Request(url + path, headers=self._headers)
            context = self._context if url.startswith("https") else None
            try:
                with urllib.request.urlopen(request, timeout=self._timeout_s,
                                            context=context) as answer:
                    return Answer.ANSWERED, f"{path}: HTTP {answer.status}"
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    continue
                if exc.code >= 500:  # up, but not ready to serve (loading, engine dead)
                    return Answer.DOWN, f"{path}: HTTP {exc.code}"
                return Answer.ANSWERED, f"{path}: HTTP {exc.code}"  # 401/403: someone is there
            except urllib.error.URLError as exc:
                return _unanswered(exc.reason if isinstance(exc.reason, BaseException)
                                   else OSError(str(exc.reason)), self._timeout_s)
            except (OSError, ValueError) as exc:  # reset mid-answer, timed out reading it
                return _unanswered(exc, self._timeout_s)
        return None


def _unanswered(exc: BaseException, timeout_s: float) -> tuple[Answer, str]:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return Answer.SLOW, f"no answer within {timeout_s:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return Answer.DOWN, "connection refused"
    if isinstance(exc, ConnectionResetError):
        return Answer.DOWN, "connection reset"
    return Answer.DOWN, f"{type(exc).__name__}: {exc}"


@functools.lru_cache(maxsize=8)
def _checker(credentials: Credentials, timeout_s: float) -> _Checker:
    """One per credentials and timeout: the scraper asks every second, and a TLS context is
    built once."""
    return _Checker(credentials, timeout_s)


def check_health(url: str, credentials: Credentials | None = None,
                 timeout_s: float = CHECK_TIMEOUT_S, path: str | None = None) -> HealthCheck:
    """`path`: where this server's kind keeps its health; None: /health, else /v1/models."""
    t_ns = time.perf_counter_ns()
    said = _checker(credentials or Credentials(), timeout_s).ask(
        url, (path,) if path else HEALTH_PATHS)
    answer, detail = said if said is not None else (Answer.ANSWERED, "no health path (404)")
    return HealthCheck(url, t_ns, answer, detail)


def health_probe(credentials: Credentials, paths: Mapping[str, str | None]
                 ) -> Callable[[str], HealthCheck]:
    """Asks one endpoint where its kind keeps its health (`paths`), as `check_health` does."""
    return lambda url: check_health(url, credentials, path=paths.get(url))


def not_answering(urls: Sequence[str], credentials: Credentials | None = None,
                  timeout_s: float = CHECK_TIMEOUT_S,
                  paths: Mapping[str, str | None] | None = None) -> list[HealthCheck]:
    """The checks of the endpoints that do not answer now (slow or down), in order. `paths`:
    each endpoint's health path, where its kind is known."""
    paths = paths or {}
    checks = [check_health(url, credentials, timeout_s, paths.get(url)) for url in urls]
    return [check for check in checks if check.answer is not Answer.ANSWERED]


def wait_until_answering(urls: Sequence[str], credentials: Credentials | None, wait_s: float,
                         say: Callable[[str], None],
                         interrupted: Callable[[], bool] = lambda: False,
                         paths: Mapping[str, str | None] | None = None) -> list[HealthCheck]:
    """Asks every WAIT_POLL_S until each endpoint answers, for at most wait_s (or until
    `interrupted`): the checks of those that still do not answer (empty: all answer)."""
    deadline = time.monotonic() + wait_s
    silent = not_answering(urls, credentials, paths=paths)
    if silent:
        say(f"waiting up to {wait_s:g} s for {', '.join(c.endpoint for c in silent)} to answer "
            f"({silent[0].detail})")
    while silent and time.monotonic() < deadline and not interrupted():
        time.sleep(min(WAIT_POLL_S, max(0.0, deadline - time.monotonic())))
        silent = not_answering([c.endpoint for c in silent], credentials, paths=paths)
    return silent
