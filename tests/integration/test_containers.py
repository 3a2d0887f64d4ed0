"""The container files validate without a Docker engine: compose config and hadolint."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path, f"{name} is not installed: pip install -e '.[dev]'"
    return path


def test_compose_file_is_valid_and_wires_server_to_client(tmp_path):
    result = subprocess.run([tool("docker-compose"), "-f", str(REPO / "docker-compose.yml"),
                             "--profile", "client", "--profile", "performance", "--profile",
                             "accuracy", "config", "--format", "json"], capture_output=True,
                            text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    import json
    config = json.loads(result.stdout)
    server, client = config["services"]["server"], config["services"]["client"]
    # One client, in the mode MODE names; the profiles run it in one mode each, as the seeds do.
    for name, mode, profile in (("client", "performance", "client"),
                                ("client-performance", "performance", "performance"),
                                ("client-accuracy", "accuracy", "accuracy")):
        service = config["services"][name]
        assert service["environment"]["MODE"] == mode and service["profiles"] == [profile]
        assert service["depends_on"]["server"]["condition"] == "service_healthy"
        assert service["volumes"] == client["volumes"]
    assert "profiles" not in server  # `up` with a profile starts the server too
    assert server["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    # The client finds every server through the file the launcher writes to a shared volume.
    assert client["environment"]["ENDPOINTS_FILE"] == "/run/client-sut/endpoints"
    shared = {v["source"] for v in server["volumes"] if v["type"] == "volume"}
    assert any(v["target"] == "/run/client-sut" and v["source"] in shared
               for v in client["volumes"])
    assert any(v["target"] == "/results" for v in client["volumes"])
    # With no HF_TOKEN in the environment, none is set: the token is never a default.
    assert server["environment"]["HF_TOKEN"] == ""


def test_cpu_override_drops_the_gpus_and_serves_the_demo_model(tmp_path):
    result = subprocess.run([tool("docker-compose"), "-f", str(REPO / "docker-compose.yml"),
                             "-f", str(REPO / "docker-compose.cpu.yml"), "config", "--format",
                             "json"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    import json
    server = json.loads(result.stdout)["services"]["server"]
    assert "deploy" not in server and server["environment"]["PROFILE"] == "cpu-demo"
    assert server["build"]["dockerfile"] == "docker/Dockerfile.server-cpu"


@pytest.mark.parametrize("dockerfile", ["Dockerfile.server", "Dockerfile.client",
                                        "docker/Dockerfile.server-cpu"])
def test_dockerfile_passes_hadolint(dockerfile):
    result = subprocess.run([tool("hadolint"), str(REPO / dockerfile)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_server_image_is_pinned_by_tag():
    """The base image is a build argument (tests build on a local one); its default is pinned."""
    text = (REPO / "Dockerfile.server").read_text()
    default = text.split("ARG BASE_IMAGE=", 1)[1].split()[0]
    assert default.startswith("vllm/vllm-openai:v") and not default.endswith(":latest")
    assert "FROM ${BASE_IMAGE}" in text
