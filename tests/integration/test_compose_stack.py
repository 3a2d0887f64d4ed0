"""`docker compose up server client`, for real: the images built on a local base image (no
registry is reachable here), vLLM for CPU serving the demo model in the server container, the
client container finding it through the endpoints file the launcher writes, the results on the
host and the exit status right. Needs a Docker engine (CI starts one: .ci/run); without one
these tests skip and say why."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

BASE_IMAGE = os.environ.get("CLIENT_SUT_TEST_BASE_IMAGE", "local/debian-py:bookworm")
CLIENT_IMAGE, SERVER_IMAGE = "client-sut-client:0.1.0", "client-sut-server-cpu:0.1.0"
WHEELS = Path("/opt/wheels")  # torch's CPU build, which PyPI lacks (see docker/Dockerfile.server-cpu)
COMPOSE_FILES = [REPO / "docker-compose.yml", REPO / "docker-compose.cpu.yml",
                 REPO / "tests" / "containers" / "compose.test.yml"]
BUILD_TIMEOUT_S, UP_TIMEOUT_S = 1200, 900


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


def _free_port() -> int:
    with socket.socket() as probe:
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
def images():
    """The base image (debootstrap, once per machine), then the project's two images on it."""
    _timed("base image", ["bash", str(REPO / "tests" / "containers" / "build-base-image.sh"),
                          BASE_IMAGE], BUILD_TIMEOUT_S)
    _timed("client image", ["docker", "build", "-q", "-f", "Dockerfile.client", "--build-arg",
                            f"BASE_IMAGE={BASE_IMAGE}", "-t", CLIENT_IMAGE, "."],
           BUILD_TIMEOUT_S, cwd=REPO)
    # The torch wheel reaches the build from a file server on 127.0.0.1 (host network).
    wheels = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                               "--directory", str(WHEELS), str(port := _free_port())],
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


def test_compose_stack_runs_on_cpu_and_leaves_the_results_on_the_host(images, tmp_path):
    from server.demo_corpus import write_corpus
    from server.demo_model import build

    model = tmp_path / "demo-model"
    build(model)
    dataset = write_corpus(tmp_path / "demo_news.jsonl")
    results = tmp_path / "results"  # not created here: Docker makes it, owned by root
    env = {**os.environ, "TEST_PORT": str(_free_port()), "DEMO_MODEL": str(model),
           "DATASET_FILE": str(dataset), "RESULTS_DIR": str(results),
           "SCENARIOS": "Offline Server",
           "EXTRA_ARGS": "--tokenizer /models/demo --total-sample-count 32 --duration 2 "
                         "--min-query-count 32 --target-qps 4"}
    compose = [str(Path(sys.executable).parent / "docker-compose"), "-p", "clientsuttest",
               *(arg for f in COMPOSE_FILES for arg in ("-f", str(f)))]
    try:
        started = time.monotonic()
        up = subprocess.run([*compose, "up", "--no-build", "--abort-on-container-exit",
                             "--exit-code-from", "client", "server", "client"],
                            capture_output=True, text=True, timeout=UP_TIMEOUT_S, env=env)
        print(f"compose up to the client's exit: {time.monotonic() - started:.0f} s",
              file=sys.stderr)
    finally:
        subprocess.run([*compose, "down", "--volumes", "--timeout", "30"], capture_output=True,
                       timeout=300, env=env)
    log = up.stdout[-6000:] + up.stderr[-3000:]
    offline = json.loads((results / "offline" / "results.json").read_text())
    server = json.loads((results / "server" / "results.json").read_text())
    assert offline["client"]["errors"] == 0 and offline["client"]["requests"] == 32, log
    assert server["client"]["errors"] == 0 and server["client"]["requests"] >= 8, log
    endpoint = offline["endpoints"][0]
    assert endpoint["found_by"] == "file:/run/client-sut/endpoints", log
    assert endpoint["reached"] == "replica" and endpoint["url"].startswith("http://127.0.0.1:")
    # The client ran as the results folder's owner, not as root.
    assert (results / "offline" / "results.json").stat().st_uid != 0
    # Short runs are never VALID by LoadGen's rules (too few queries): exit status 1 then,
    # which is what the client container passes on.
    expected = max(0 if r["loadgen"]["result"] == "VALID" else 1 for r in (offline, server))
    assert up.returncode == expected, log
