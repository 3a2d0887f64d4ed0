"""The runs of a series (sla's probes, sweep's points) as `client-sut run` processes of their own:
bad input in the first is the command's own usage error, later ones are kept as runs that wrote
nothing, and an interrupt that came first starts none. Real child processes; the runs here are
refused before they send anything, so no server is needed but the one the guard asks."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from client_sut.errors import EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from client_sut.runs.child import Series
from client_sut.runs.server_guard import ServerGuard
from client_sut.security import Credentials

BAD = ["--scenario", "Offline"]  # no --dataset: refused by the run's parser


@pytest.fixture
def healthy() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- the standard library's name
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def series(url: str, tmp_path: Path) -> Series:
    return Series(("--endpoint", url), tmp_path / "tokens.msgpack",
                  guard=ServerGuard([url], Credentials(), None, lambda _: None))


def test_bad_input_in_the_first_run_is_the_commands_usage_error(healthy, tmp_path):
    announced = []
    with pytest.raises(UsageError) as raised:
        series(healthy, tmp_path).launch(tmp_path / "probe-01", "probe-01", BAD,
                                         lambda: announced.append(True))
    assert str(raised.value).startswith("the following arguments are required: --dataset")
    assert announced == [True]
    assert "--dataset" in (tmp_path / "probe-01" / "run.log").read_text()


def test_a_later_run_refused_is_a_run_that_wrote_nothing(healthy, tmp_path):
    later = series(healthy, tmp_path)
    later.runs = 3  # a server gone by now fails a run's checks: the series goes on to judge it
    output = later.launch(tmp_path / "probe-04", "probe-04", BAD, lambda: None)
    assert output.exit_status == EXIT_USAGE and output.results is None
    assert "required: --dataset" in output.error_line
    assert later.runs == 4 and later.child is None


def test_an_interrupt_before_a_run_means_it_never_starts(healthy, tmp_path):
    stopped = series(healthy, tmp_path)
    stopped.interrupted = True
    announced = []
    output = stopped.launch(tmp_path / "probe-02", "probe-02", BAD,
                            lambda: announced.append(True))
    assert output.exit_status == EXIT_INTERRUPTED and output.results is None
    assert announced == [] and not (tmp_path / "probe-02").exists() and stopped.runs == 0
