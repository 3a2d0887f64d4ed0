"""Which deadline a request has passed, and how the API key and TLS settings are resolved."""

from pathlib import Path

import pytest

from client_sut.errors import UsageError
from client_sut.measure.timeouts import NS, Watchdog, Watched
from client_sut.request import Timeouts
from client_sut.security import Credentials, resolve_credentials

TIMEOUTS = Timeouts(connect=1, first_byte=2, gap=3, total=10)


def watched(started: bool, last_s: float) -> Watched:
    entry = Watched(task=None, send_ns=0)
    entry.started, entry.last_ns = started, int(last_s * NS)
    return entry


@pytest.mark.parametrize("started, last_s, now_s, words", [
    (False, 0, 1.9, None),
    (False, 0, 2.1, "--first-byte-timeout"),
    (True, 1.0, 3.9, None),  # headers at 1 s, nothing since: 2.9 s is within the gap
    (True, 1.0, 4.1, "--gap-timeout"),
    (True, 9.5, 10.1, "--request-timeout"),  # still streaming, but too old
])
def test_deadlines(started, last_s, now_s, words):
    reason = Watchdog(TIMEOUTS).expired(watched(started, last_s), int(now_s * NS))
    assert (reason is None) if words is None else (words in reason)


def test_watchdog_wakes_often_enough_for_the_shortest_timeout():
    assert Watchdog(Timeouts(first_byte=0.5, gap=0.5)).tick_s == 0.025
    assert Watchdog(Timeouts()).tick_s == 1.0


def test_key_precedence_and_headers(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "from-default")
    monkeypatch.setenv("OTHER", "from-named")
    key_file = tmp_path / "k"
    key_file.write_text("from-file\n")
    assert resolve_credentials(key_env=None, key_file=None, insecure=False,
                               ca_bundle=None).api_key == "from-default"
    assert resolve_credentials(key_env="OTHER", key_file=None, insecure=False,
                               ca_bundle=None).headers == {"Authorization": "Bearer from-named"}
    assert resolve_credentials(key_env=None, key_file=key_file, insecure=False,
                               ca_bundle=None).api_key == "from-file"


def test_no_key_sends_no_header(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert resolve_credentials(key_env=None, key_file=None, insecure=False,
                               ca_bundle=None).headers == {}


def test_key_never_shows_in_repr_and_is_redacted():
    credentials = Credentials(api_key="sk-secret")
    assert "sk-secret" not in repr(credentials)
    assert credentials.redact("bad key sk-secret!") == "bad key [redacted]!"
    assert Credentials().redact("text") == "text"


@pytest.mark.parametrize("kwargs, words", [
    (dict(key_env="A", key_file=Path("f")), "keep one"),
    (dict(insecure=True, ca_bundle=Path(__file__)), "keep one"),
    (dict(key_env="CLIENT_SUT_UNSET_VARIABLE"), "is not set"),
    (dict(key_file=Path("/nonexistent/key")), "cannot read --api-key-file"),
])
def test_credential_conflicts_and_gaps(kwargs, words, monkeypatch):
    monkeypatch.delenv("CLIENT_SUT_UNSET_VARIABLE", raising=False)
    arguments = {**dict(key_env=None, key_file=None, insecure=False, ca_bundle=None), **kwargs}
    with pytest.raises(UsageError, match=words):
        resolve_credentials(**arguments)


def test_tls_verification_on_by_default():
    assert Credentials().ssl_context() is True
    assert Credentials(verify_tls=False).ssl_context() is False
