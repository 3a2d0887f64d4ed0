"""The Kubernetes manifests, rendered for every GPU profile and validated offline: strictly
against the Kubernetes schemas (kubernetes-validate), then what schemas cannot see."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from client_sut.preflight.discovery import discover
from tests.conftest import REPO

OVERLAYS = REPO / "deploy" / "kubernetes" / "overlays"
PROFILES = ("a30", "h100", "h200")


def render(profile: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) is needed to render deploy/kubernetes"
    result = subprocess.run([kubectl, "kustomize", str(OVERLAYS / profile)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(documents: list[dict], kind: str) -> dict:
    matches = [d for d in documents if d["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}"
    return matches[0]


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_overlays_cover_the_gpu_profiles():
    assert sorted(p.name for p in OVERLAYS.iterdir()) == sorted(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_manifests_validate_strictly(profile, tmp_path):
    rendered = tmp_path / f"{profile}.yaml"
    rendered.write_text(yaml.safe_dump_all(render(profile)))
    validate = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(validate), "--strict", "--quiet", str(rendered)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_what_schemas_cannot_see(profile):
    documents = render(profile)
    deployment, service = by_kind(documents, "Deployment"), by_kind(documents, "Service")
    job, config_map = by_kind(documents, "Job"), by_kind(documents, "ConfigMap")
    pod = deployment["spec"]["template"]["spec"]
    vllm = pod["containers"][0]
    # One GPU per pod, requested as much as limited.
    assert vllm["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert env(vllm)["PROFILE"] == profile and env(vllm)["GPUS"] == "1"
    assert (REPO / "server" / "profiles" / f"{profile}.toml").is_file()
    # Probes on vLLM's /health, with a start allowance of at least 15 minutes.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert vllm[probe]["httpGet"]["path"] == "/health"
    startup = vllm["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 900
    # Memory-backed /dev/shm, model cache on a volume, the token from a Secret.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in vllm["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert "persistentVolumeClaim" in volumes["model-cache"]
    token = next(e for e in vllm["env"] if e["name"] == "HF_TOKEN")
    assert "secretKeyRef" in token["valueFrom"] and "value" not in token
    # A headless Service over the vLLM pods.
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= pod_labels(deployment).items()
    # The client Job: never restarted, waits for every replica, user.conf from the ConfigMap.
    job_pod = job["spec"]["template"]["spec"]
    client = job_pod["containers"][0]
    assert job_pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    client_env = env(client)
    assert int(client_env["EXPECT_ENDPOINTS"]) == deployment["spec"]["replicas"] > 1
    config_volume = next(v for v in job_pod["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert "--user-conf /config/user.conf" in client_env["EXTRA_ARGS"]
    assert any("persistentVolumeClaim" in v for v in job_pod["volumes"])
    # No image floats: every one is pinned to a tag other than latest.
    for container in (vllm, client):
        name, _, tag = container["image"].rpartition(":")
        assert name and tag and tag != "latest", container["image"]


@pytest.mark.parametrize("profile", PROFILES)
def test_the_client_finds_as_many_endpoints_as_replicas(profile):
    """The headless Service's name answers with one address per ready pod: the client's
    dns+ endpoint expands to exactly that many replicas (the resolver plays the cluster DNS)."""
    documents = render(profile)
    deployment, service = by_kind(documents, "Deployment"), by_kind(documents, "Service")
    client_env = env(by_kind(documents, "Job")["spec"]["template"]["spec"]["containers"][0])
    replicas = deployment["spec"]["replicas"]
    pod_ips = [f"10.1.0.{i + 10}" for i in range(replicas)]
    name, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]

    def cluster_dns(host: str, asked_port: int) -> list[str]:
        assert (host, asked_port) == (name, port), "the client asks for another name or port"
        return pod_ips

    found = discover(client_env["ENDPOINTS"].split(), resolve=cluster_dns)
    assert [e.url for e in found] == [f"http://{ip}:{port}" for ip in pod_ips]
    assert all(e.reached == "replica" for e in found)


@pytest.mark.parametrize("profile", PROFILES)
def test_overlay_user_conf_holds_the_shipped_rates_per_replica(profile):
    """The ConfigMap's user.conf (one file, every scenario) is loadgen_configs/<profile>'s rates
    times the replicas: the two cannot drift apart unnoticed."""
    documents = render(profile)
    replicas = by_kind(documents, "Deployment")["spec"]["replicas"]
    overlay = settings((OVERLAYS / profile / "user.conf").read_text())
    shipped = {}
    for conf in (REPO / "loadgen_configs" / profile).glob("*/user.conf"):
        shipped.update(settings(conf.read_text()))
    assert overlay == {key: value * replicas for key, value in shipped.items()}


def pod_labels(deployment: dict) -> dict:
    return deployment["spec"]["template"]["metadata"]["labels"]


def settings(text: str) -> dict[str, float]:
    pairs = (line.split("=") for line in text.splitlines() if line and not line.startswith("#"))
    return {key.strip(): float(value) for key, value in pairs}
