"""`docker compose up server client`, for real: the images built on a local base image (no
registry is reachable here), vLLM for CPU serving the demo model in the server container, the
client container finding it through the endpoints file the launcher writes, the results on the
host and the exit status right. Needs a Docker engine (CI starts one: .ci/run); without one
these tests skip and say why."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from client_sut.runs.results import exit_status
from tests.conftest import REPO, announce

BASE_IMAGE = os.environ.get("CLIENT_SUT_TEST_BASE_IMAGE", "local/debian-py:bookworm")
CLIENT_IMAGE, SERVER_IMAGE = "client-sut-client:0.1.0", "client-sut-server-cpu:0.1.0"
WHEELS = Path("/opt/wheels")  # torch's CPU build, which PyPI lacks (see docker/Dockerfile.server-cpu)
COMPOSE_FILES = [REPO / "docker-compose.yml", REPO / "docker-compose.cpu.yml",
                 REPO / "tests" / "containers" / "compose.test.yml"]
BUILD_TIMEOUT_S, UP_TIMEOUT_S = 1200, 900
WHEELS_PORT = 18787


def _engine_answers() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker command (.ci/run installs docker.io)"
    result = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    return None if result.returncode == 0 else f"no Docker engine answers: {result.stderr.strip()}"


pytestmark = pytest.mark.skipif(bool(_engine_answers()), reason=str(_engine_answers()))


def _timed(label: str, command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    print(f"{label}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    assert result.returncode == 0, f"{label} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def _free_port(wanted: int = 0) -> int:
    """wanted if it is free (0: any free port)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pip_index_args() -> list[str]:
    """The package index this machine's pip is configured with, passed on to the image's pip
    (none configured: pip's own default, as here)."""
    configured = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                                capture_output=True, text=True, timeout=60).stdout.strip()
    index = os.environ.get("PIP_INDEX_URL") or configured
    return ["--build-arg", f"INDEX_URL={index}"] if index else []


@pytest.fixture(scope="module")
def images(request):
    """The base image (debootstrap, once per machine), then the project's two images on it."""
    announce(request.config, "[compose tests] building the images: a Debian base image, then "
                             "the client's and vLLM's (about 10 minutes the first time on 2 "
                             "cores, seconds once Docker has them cached)")
    _timed("base image", ["bash", str(REPO / "tests" / "containers" / "build-base-image.sh"),
                          BASE_IMAGE], BUILD_TIMEOUT_S)
    _timed("client image", ["docker", "build", "-q", "-f", "Dockerfile.client", "--build-arg",
                            f"BASE_IMAGE={BASE_IMAGE}", "-t", CLIENT_IMAGE, "."],
           BUILD_TIMEOUT_S, cwd=REPO)
    # The torch wheel reaches the build from a file server on 127.0.0.1 (host network), on the
    # same port each time: the URL is a build argument, part of the heavy layer's cache key.
    wheels = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                               "--directory", str(WHEELS), str(port := _free_port(WHEELS_PORT))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _timed("server image", ["docker", "build", "-q", "--network", "host", "-f",
                                "docker/Dockerfile.server-cpu", "--build-arg",
                                f"BASE_IMAGE={BASE_IMAGE}", *_pip_index_args(), "--build-arg",
                                f"PIP_FIND_LINKS=http://127.0.0.1:{port}/", "-t", SERVER_IMAGE,
                                "."], BUILD_TIMEOUT_S, cwd=REPO)
    finally:
        wheels.terminate()
        wheels.wait(10)
    for image in (BASE_IMAGE, CLIENT_IMAGE, SERVER_IMAGE):
        size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image],
                              capture_output=True, text=True, timeout=60).stdout.strip()
        print(f"{image}: {int(size) / 1e6:,.0f} MB", file=sys.stderr)


@dataclass
class Stack:
    """The CPU stack's server, up for the module; each test runs the client against it."""

    compose: list[str]
    env: dict
    folder: Path

    def server_up(self) -> None:
        """Started (again, when a test's `up` stopped it) and healthy."""
        _timed("server up", [*self.compose, "up", "-d", "--no-build", "--wait", "server"],
               UP_TIMEOUT_S, env=self.env)

    def client(self, name: str, *command: str, **env: str) -> tuple[subprocess.CompletedProcess,
                                                                    Path]:
        """One compose command for the client into a results folder of its own (not created
        here: Docker makes it, owned by root, as it does for a user who did not)."""
        self.server_up()
        results = self.folder / name
        started = time.monotonic()
        done = subprocess.run([*self.compose, *command], capture_output=True, text=True,
                              timeout=UP_TIMEOUT_S,
                              env={**self.env, "RESULTS_DIR": str(results), **env})
        print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
        return done, results


@pytest.fixture(scope="module")
def stack(images, tmp_path_factory):
    from server.demo_corpus import write_corpus
    from server.demo_model import build

    folder = tmp_path_factory.mktemp("stack")
    model = folder / "demo-model"
    build(model)
    dataset = write_corpus(folder / "demo_news.jsonl")
    env = {**os.environ, "TEST_PORT": str(_free_port()), "DEMO_MODEL": str(model),
           "DATASET_FILE": str(dataset), "RESULTS_DIR": str(folder / "unused")}
    compose = [str(Path(sys.executable).parent / "docker-compose"), "-p", "clientsuttest",
               *(arg for f in COMPOSE_FILES for arg in ("-f", str(f)))]
    try:
        yield Stack(compose, env, folder)
    finally:
        subprocess.run([*compose, "down", "--volumes", "--remove-orphans", "--timeout", "30"],
                       capture_output=True, timeout=300, env=env)


def _results(folder: Path, name: str) -> dict:
    return json.loads((folder / name / "results.json").read_text())


SHORT = {"SCENARIOS": "Offline", "SAMPLES": "16", "EXTRA_ARGS": "--tokenizer /models/demo"}


@pytest.mark.parametrize("profile, folder", [("performance", "offline"),
                                             ("accuracy", "offline-accuracy")])
def test_a_profile_runs_the_client_in_its_mode(stack, profile, folder):
    service = f"client-{profile}"
    # In the background, then waited for: `up` in the foreground would stop the server with it.
    started, results = stack.client(f"profile-{profile}", "--profile", profile, "up", "-d",
                                    "--no-build", **SHORT)
    assert started.returncode == 0, started.stderr[-3000:]
    up = subprocess.run([*stack.compose, "wait", service], capture_output=True, text=True,
                        timeout=UP_TIMEOUT_S, env={**stack.env, "RESULTS_DIR": str(results)})
    log = subprocess.run([*stack.compose, "logs", service], capture_output=True, text=True,
                         timeout=120, env={**stack.env, "RESULTS_DIR": str(results)}).stdout
    # `wait` prints `container "ID" exited with status code N`.
    status = re.search(r"status code (\d+)", up.stdout + up.stderr)
    up = subprocess.CompletedProcess(up.args, int(status.group(1)) if status else up.returncode,
                                     log, up.stderr)
    assert sorted(p.name for p in results.iterdir() if p.is_dir()) == [folder,
                                                                       "report_figures"], log
    run = _results(results, folder)
    assert run["mode"] == profile and run["client"]["requests"] == 16, log
    assert (results / "report.html").is_file()
    # The container's status is its run's: the demo model's ROUGE fails its accuracy run.
    assert up.returncode == exit_status(run), log


def test_full_mode_runs_both_and_gives_the_accuracy_verdict(stack):
    done, results = stack.client("full", "run", "--rm", "-e", "MODE=full", "client", **SHORT)
    log = done.stdout[-4000:] + done.stderr[-2000:]
    assert _results(results, "offline")["mode"] == "performance", log
    accuracy = _results(results, "offline-accuracy")["accuracy"]
    assert not accuracy["passed"]  # random weights
    assert f"Offline: accuracy FAILED (rouge1 {accuracy['rouge1']}, 16 samples)" in done.stdout
    assert (results / "report.html").is_file() and done.returncode == 1, log


def test_sla_mode_answers_in_one_line(stack):
    # Limits the CPU server cannot keep at the rates tried: each probe is cut short once the p99
    # is lost, so the mode's path runs in seconds (a pass needs 505 queries: minutes here).
    done, results = stack.client(
        "sla", "run", "--rm", "-e", "MODE=sla", "client", SAMPLES="16",
        EXTRA_ARGS="--tokenizer /models/demo",
        SLA_ARGS="--start-qps 100 --ttft-limit-ms 50 --probe-duration 1 --max-probes 2")
    log = done.stdout[-4000:] + done.stderr[-2000:]
    sla = json.loads((results / "sla" / "sla.json").read_text())
    assert [p["verdict"] for p in sla["probes"]] == ["fail", "fail"], log
    assert "no rate was confirmed VALID within the Server SLA" in done.stdout, log
    assert (results / "report.html").is_file() and done.returncode == 1, log


def test_submission_mode_leaves_the_folder_and_the_checkers_verdict(stack):
    from tests.integration.test_submission import CHECKER, SYSTEM_FILE

    results = stack.folder / "submission"
    results.mkdir()
    (results / "system.toml").write_text(SYSTEM_FILE)
    done, _ = stack.client("submission", "run", "--rm", "-e", "MODE=submission", "client",
                           CHECKER_DIR=str(CHECKER), **SHORT)
    log = done.stdout[-4000:] + done.stderr[-2000:]
    report = json.loads((results / "submission" / "submission.json").read_text())
    # SAMPLES makes each of its runs short: 16 queries, not the 600 s Offline run.
    runs = results / "submission" / "runs" / "Offline"
    assert _results(runs, "performance")["client"]["requests"] == 16, log
    # A 16-sample QSL is no performance sample count the checker takes: refused, and said.
    assert report["official_checker"]["errors"] and not report["passed"], log
    assert (results / "submission" / "submission" / "closed" / "TestOrg").is_dir()
    assert (results / "report.html").is_file() and done.returncode == 1, log


def test_compose_stack_runs_on_cpu_and_leaves_the_results_on_the_host(stack):
    # Last: `up` in the foreground stops the server when the client exits.
    up, results = stack.client(
        "up", "up", "--no-build", "--abort-on-container-exit", "--exit-code-from", "client",
        "server", "client", SCENARIOS="Offline Server",
        EXTRA_ARGS="--tokenizer /models/demo --total-sample-count 32 --duration 2 "
                   "--min-query-count 32 --target-qps 4")
    log = up.stdout[-6000:] + up.stderr[-3000:]
    offline, server = _results(results, "offline"), _results(results, "server")
    assert offline["client"]["errors"] == 0 and offline["client"]["requests"] == 32, log
    assert server["client"]["errors"] == 0 and server["client"]["requests"] >= 8, log
    endpoint = offline["endpoints"][0]
    assert endpoint["found_by"] == "file:/run/client-sut/endpoints", log
    assert endpoint["reached"] == "replica" and endpoint["url"].startswith("http://127.0.0.1:")
    # The client ran as the results folder's owner, not as root.
    assert (results / "offline" / "results.json").stat().st_uid != 0
    assert (results / "report.html").is_file()  # one report beside the runs
    # Short runs are never VALID by LoadGen's rules (too few queries): exit status 1 then,
    # which is what the client container passes on.
    expected = max(0 if r["loadgen"]["result"] == "VALID" else 1 for r in (offline, server))
    assert up.returncode == expected, log


def _served_requests(url: str) -> float:
    """vLLM's own count of the requests it finished (0 while it does not answer)."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:request_success_total"))


def test_two_servers_one_killed_mid_run_fails_only_its_requests(stack):
    """Two CPU servers pinned to a core each, found through their launchers' files; the second
    is killed (docker kill) while a Server run drives both: the run ends, the live server's
    requests count, the dead one's fail under its endpoint, nothing is lost, the exit status is
    1. Last: the stack's server is recreated pinned to its core."""
    # Ports of their own: the stack's server port may still be held (TIME_WAIT) by the server
    # the test before stopped.
    port_1, port_2 = _free_port(), _free_port()
    compose = [*stack.compose, "-f", str(REPO / "docker-compose.two-servers.yml"),
               "-f", str(REPO / "tests" / "containers" / "compose.two-servers.test.yml")]
    results = stack.folder / "two-servers"
    env = {**stack.env, "TEST_PORT": str(port_1), "TEST_PORT_2": str(port_2),
           "RESULTS_DIR": str(results),
           "SCENARIOS": "Server", "EXTRA_ARGS": "--tokenizer /models/demo --total-sample-count "
           "32 --duration 40 --min-query-count 160 --target-qps 4"}
    # From nothing: the endpoints volume emptied, so that no file of a former server makes a
    # new one look healthy.
    _timed("stack down", [*compose, "down", "--volumes", "--timeout", "30"], 300, env=env)
    _timed("two servers up", [*compose, "up", "-d", "--no-build", "--wait", "server",
                              "server-2"], UP_TIMEOUT_S, env=env)
    client = subprocess.Popen([*compose, "run", "--rm", "client"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        second = f"http://127.0.0.1:{port_2}"
        deadline = time.monotonic() + 300  # the client's start, then 10 of its requests
        while _served_requests(second) < 10 and client.poll() is None:
            assert time.monotonic() < deadline, "the second server served no requests"
            try:  # a bounded poll: the client's exit ends it too
                client.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        _timed("docker kill server-2", [*compose, "kill", "server-2"], 120, env=env)
        stdout, stderr = client.communicate(timeout=UP_TIMEOUT_S)
    finally:
        client.kill()
    log = stdout[-4000:] + stderr[-2000:]
    run = _results(results, "server")
    endpoints = {e["url"]: e for e in run["endpoints"]}
    first = f"http://127.0.0.1:{port_1}"
    assert set(endpoints) == {first, second}, log
    assert all(e["found_by"].startswith("file:/run/client-sut/endpoints") for e in
               endpoints.values())
    assert endpoints[first]["errors"] == 0 and endpoints[first]["requests"] > 10, log
    assert endpoints[second]["errors"] > 0, log  # failed, and named under its endpoint
    client_figures = run["client"]
    assert client_figures["issued"] == client_figures["requests"]  # nothing lost
    assert client_figures["errors"] == endpoints[second]["errors"]
    assert client.returncode == 1, log
    page = (results / "report.html").read_text()  # both replicas side by side
    assert first in page and second in page
