"""Between the runs of a series (sla, sweep, submission): no run starts against a server that
does not answer, and a run whose server was lost is said so. Against real HTTP servers on
127.0.0.1 (the standard library's), and a port nobody listens on."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from client_sut.errors import EXIT_FAILED, EXIT_INTERRUPTED, RunStopped
from client_sut.measure.health import check_health, not_answering
from client_sut.records import Answer
from client_sut.runs.server_guard import MAX_REPEATS, ServerGuard
from client_sut.security import Credentials


def _server(statuses: dict[str, int]) -> Iterator[str]:
    """A server answering each path with its status (404 for any other)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- the standard library's name
            self.send_response(statuses.get(self.path, 404))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def healthy() -> Iterator[str]:
    yield from _server({"/health": 200})


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as s:  # bound, never listening: connecting is refused
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def guard(*urls: str, wait_s: float | None = None) -> tuple[ServerGuard, list[str]]:
    said: list[str] = []
    return ServerGuard(urls, Credentials(), wait_s, said.append), said


def test_health_is_its_path_else_the_models_list_else_down(closed_port):
    for statuses, answer in (({"/health": 200}, Answer.ANSWERED),
                             ({"/v1/models": 200}, Answer.ANSWERED),  # no /health: 404
                             ({"/health": 503}, Answer.DOWN)):  # up, not ready to serve
        for url in _server(statuses):
            assert check_health(url).answer is answer, statuses
    refused = check_health(closed_port)
    assert (refused.answer, refused.detail) == (Answer.DOWN, "connection refused")


def test_a_kind_that_keeps_its_health_elsewhere_is_asked_there_alone():
    for url in _server({"/v1/health/ready": 503, "/health": 200}):  # NIM, not yet ready
        assert not_answering([url], paths={url: "/v1/health/ready"})[0].answer is Answer.DOWN
        assert not_answering([url]) == []


def test_no_run_starts_against_a_server_that_does_not_answer(healthy, closed_port):
    ok, said = guard(healthy)
    ok.before("probe-01")
    assert said == []
    stopped, said = guard(healthy, closed_port)
    with pytest.raises(RunStopped) as raised:
        stopped.before("probe-02")
    assert raised.value.during == "probe-02"
    assert raised.value.reason == (f"the server at {closed_port} does not answer before "
                                   f"probe-02 (connection refused)")
    assert said == [raised.value.reason]  # said as it stops, not only in the file


def test_a_run_that_wrote_nothing_is_lost_only_if_its_server_is_gone(healthy, closed_port):
    assert guard(healthy)[0].lost(None, EXIT_FAILED, "probe-03") is None
    assert guard(closed_port)[0].lost(None, EXIT_INTERRUPTED, "probe-03") is None  # Ctrl-C
    reason = guard(closed_port)[0].lost(None, EXIT_FAILED, "probe-03")
    assert reason == (f"the server at {closed_port} stopped answering during probe-03 "
                      f"(connection refused); the run wrote no results")


def test_a_run_that_saw_its_server_go_names_it_and_learns_where_its_health_is(healthy):
    endpoints = [{"url": healthy, "dialect": {"health_path": "/health"},
                  "health": {"state": "answering", "outages": []}},
                 {"url": "http://127.0.0.1:9", "dialect": {"health_path": "/v1/health/ready"},
                  "health": {"state": "stopped", "outages": [
                      {"stopped_s": 2.0, "evidence": "4 connections refused",
                       "came_back_s": None}]}}]
    sentry, _ = guard(healthy)
    reason = sentry.lost({"endpoints": endpoints}, 0, "confirm-1")
    assert reason is not None and reason.startswith("the deployment lost a replica: the server "
                                                    "at http://127.0.0.1:9 stopped answering "
                                                    "during confirm-1")
    assert sentry.health_paths == {healthy: "/health", "http://127.0.0.1:9": "/v1/health/ready"}
    endpoints[1]["health"] = endpoints[0]["health"]
    assert sentry.lost({"endpoints": endpoints}, 0, "confirm-1") is None


def test_a_lost_run_is_repeated_only_when_asked_and_not_for_ever():
    with pytest.raises(RunStopped):
        guard("http://127.0.0.1:9")[0].may_repeat("gone", "probe-04")
    patient, said = guard("http://127.0.0.1:9", wait_s=30)
    for _ in range(MAX_REPEATS):
        patient.may_repeat("gone", "probe-04")
    with pytest.raises(RunStopped, match=f"servers were lost {MAX_REPEATS + 1} times"):
        patient.may_repeat("gone", "probe-04")
    assert said == [f"gone; servers were lost {MAX_REPEATS + 1} times in this series"]
