"""What the tool can see of the system: this host's CPU, memory, disk and OS, NVIDIA GPUs where
`nvidia-smi` answers, and each server's vLLM version and served model. Nothing here fails: a
fact that cannot be read is left out, and the user's system file has to give it.

The host facts are those of the machine `submission` runs on; when the servers run elsewhere,
the user's file says so (its values win).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from client_sut import __version__

PROBE_TIMEOUT_S = 5.0


def _cpuinfo() -> list[dict[str, str]]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return []
    blocks = []
    for block in text.strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        blocks.append(fields)
    return blocks


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.0f} GB"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} (kernel {platform.release()})"
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def host_facts(storage_path: Path) -> dict:
    cpus = _cpuinfo()
    facts: dict[str, object] = {"operating_system": _os_name()}
    if cpus:
        facts["host_processor_model_name"] = cpus[0].get("model name", "")
        sockets = {cpu.get("physical id") for cpu in cpus} - {None}
        facts["host_processors_per_node"] = max(1, len(sockets))
        facts["host_processor_core_count"] = int(cpus[0].get("cpu cores") or len(cpus))
    memory = _memory_bytes()
    if memory:
        facts["host_memory_capacity"] = _gib(memory)
    try:
        facts["host_storage_capacity"] = _gib(shutil.disk_usage(storage_path).total)
    except OSError:
        pass
    return facts


def gpu_facts() -> dict:
    """NVIDIA GPUs this host sees (nvidia-smi), else nothing."""
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    gpus = [line.split(",") for line in out.strip().splitlines() if "," in line]
    if not gpus:
        return {}
    return {"accelerators_per_node": len(gpus), "accelerator_model_name": gpus[0][0].strip(),
            "accelerator_memory_capacity": f"{float(gpus[0][1]) / 1024:.0f} GB"}


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def served(endpoints: Sequence[str]) -> tuple[list[str], list[str]]:
    """The servers' vLLM versions (GET /version) and served models (GET /v1/models)."""
    versions, models = set(), set()
    for endpoint in endpoints:
        version = _get_json(f"{endpoint}/version") or {}
        if version.get("version"):
            versions.add(str(version["version"]))
        listing = _get_json(f"{endpoint}/v1/models") or {}
        models.update(m["id"] for m in listing.get("data", []) if isinstance(m, dict) and "id" in m)
    return sorted(versions), sorted(models)


def software_stack() -> str:
    return (f"client_sut {__version__}, mlcommons-loadgen {metadata.version('mlcommons-loadgen')}, "
            f"Python {sys.version.split()[0]}")


def detected(endpoints: Sequence[str], storage_path: Path) -> tuple[dict, dict]:
    """What the tool sees for the system description, and for measurements.json."""
    versions, models = served(endpoints)
    system = {**host_facts(storage_path), **gpu_facts(),
              "framework": "vLLM " + ", ".join(versions) if versions else None,
              "sw_notes": "served model: " + ", ".join(models) if models else None,
              "other_software_stack": software_stack(),
              # Llama-3.1-8B's Offline, Server and Interactive make the datacenter suite.
              "system_type": "datacenter"}
    # The client sends the prompt as int32 token ids; the weights are those the server loaded.
    measurements = {"input_data_types": "int32",
                    "starting_weights_filename": ", ".join(models) if models else None}
    return system, measurements
