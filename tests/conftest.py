"""Shared fixtures: real servers on 127.0.0.1, started and stopped by the tests themselves."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client_sut.servers.emitter import EmitterProcess

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "cnndm_validation_200.jsonl"
CLI_TIMEOUT_S = 300


def pytest_sessionstart(session) -> None:
    if not SHARED_DATA.is_file():
        pytest.exit(f"test data {SHARED_DATA} is missing: the checkout must sit beside shared/ "
                    f"(CI puts it there)", returncode=2)


# `make test` runs the suite on two workers (pytest-xdist, --dist loadfile), then the tests
# marked `timing` alone. A module's tests stay on one worker, so a server or the images a module
# starts are started once. The modules that start CPU-heavy servers (vLLM, the compose stack)
# take turns on one worker, so that one of them at most loads the cores while the other worker
# runs the light tests; they come first, since they take longest.
SERVER_MODULES = ("tests/integration/test_compose_stack.py", "tests/e2e/test_vllm_cpu.py",
                  "tests/e2e/test_real_model.py")


def pytest_collection_modifyitems(config, items) -> None:
    def rank(item) -> int:
        module = item.nodeid.split("::", 1)[0]
        return SERVER_MODULES.index(module) if module in SERVER_MODULES else len(SERVER_MODULES)

    items.sort(key=rank)  # stable: collection order within a module and among the rest


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ServersTakeTurns(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return "the modules with real servers" if module in SERVER_MODULES else module

    return ServersTakeTurns(config, log)


def announce(config, message: str) -> None:
    """A line on the terminal now, for long set-up work that would otherwise look like a hang
    (pytest captures a test's output, and a worker's until its test ends)."""
    with config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        sys.stderr.write(f"\n{message}\n")
        sys.stderr.flush()


@pytest.fixture(scope="session")
def demo_tokenizer(tmp_path_factory) -> Path:
    """The demo model's tokenizer alone (no weights): enough for runs against the emitter."""
    from server.demo_model import build_tokenizer

    folder = tmp_path_factory.mktemp("demo-tokenizer")
    build_tokenizer(folder)
    return folder


@pytest.fixture
def start_emitter():
    started: list[EmitterProcess] = []

    def start(*args: str) -> EmitterProcess:
        emitter = EmitterProcess(*args)
        started.append(emitter)
        return emitter

    yield start
    for emitter in started:
        emitter.stop()


class CliRun:
    def __init__(self, completed: subprocess.CompletedProcess, output_dir: Path) -> None:
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.output_dir = output_dir

    @property
    def results(self) -> dict:
        return json.loads((self.output_dir / "results.json").read_text())

    def requests(self) -> list[dict]:
        lines = (self.output_dir / "requests.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture
def run_cli(tmp_path):
    """Runs `client-sut run` in its own process (LoadGen allows one configuration per process)."""
    counter = iter(range(1000))

    def run(*args: str, timeout: float = CLI_TIMEOUT_S,
            open_files: tuple[int, int] | None = None, cores: set[int] | None = None) -> CliRun:
        """`open_files`: the (soft, hard) open-file limit the run starts with; `cores`: the
        cores it may run on."""
        output_dir = tmp_path / f"run{next(counter)}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

        def limits() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, open_files)
            if cores is not None:
                os.sched_setaffinity(0, cores)

        completed = subprocess.run(
            [sys.executable, "-m", "client_sut", "run", "--output-dir", str(output_dir), *args],
            capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env,
            preexec_fn=limits)
        return CliRun(completed, output_dir)

    return run


@pytest.fixture
def start_run():
    """`client-sut run` in its own process with its output piped, for a test that acts on it
    mid-run (`stop_run`); any still running when the test ends is killed."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "client_sut", "run", *args], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"})
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def stop_run(process: subprocess.Popen, sig: int, timeout_s: float = 60) -> tuple[str, str]:
    """Sends the signal and waits for the run to end: its stdout and stderr."""
    process.send_signal(sig)
    return process.communicate(timeout=timeout_s)


def wait_for_requests(emitter, count: int, deadline_s: float = 60.0) -> None:
    """Until the emitter has received `count` streaming requests (bounded in time)."""
    end = time.monotonic() + deadline_s
    while len(emitter.log()) < count:
        if time.monotonic() > end:
            raise AssertionError(f"the run sent fewer than {count} requests in {deadline_s} s")
        time.sleep(0.05)
