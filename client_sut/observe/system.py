"""What ran: results.json `system`. The client host, each server's /version and model, the GPUs.

Read once, before the run starts; nothing here can fail a run: a figure that cannot be read is
left out (a server without /version is noted as such).
"""

from __future__ import annotations

import json
import os
import platform
import urllib.error
import urllib.request
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from client_sut import __version__
from client_sut.security import Credentials

PROBE_TIMEOUT_S = 5.0


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def host_info() -> dict:
    return {
        "hostname": platform.node(),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "client_sut": __version__,
        "loadgen": _version("mlcommons-loadgen"),
    }


def _get_json(url: str, credentials: Credentials) -> dict | None:
    request = urllib.request.Request(url, headers=credentials.headers)
    context = credentials.ssl_context()
    if context is True:
        context = None
    elif context is False:
        import ssl
        context = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S,
                                    context=context if url.startswith("https") else None) as answer:
            payload = json.load(answer)
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def server_info(endpoint: str, model: str, credentials: Credentials) -> dict:
    version = _get_json(f"{endpoint}/version", credentials)
    listing = _get_json(f"{endpoint}/v1/models", credentials) or {}
    served = next((m for m in listing.get("data", []) if isinstance(m, dict)
                   and m.get("id") == model), {})
    return {
        "url": endpoint,
        "version": version.get("version") if version else None,
        "version_note": None if version else "no /version (not vLLM, or an older one)",
        "model": model,
        "model_root": served.get("root"),
        "max_model_len": served.get("max_model_len"),
    }


def nvml_gpus() -> list[dict]:
    """This host's GPUs through NVML (nvidia-ml-py); none where there is no NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no library, no driver, no GPU: this is not a GPU host
        return []
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append({"index": str(index), "name": pynvml.nvmlDeviceGetName(handle),
                         "memory_total_mib": pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20,
                         "driver": driver})
        return gpus
    finally:
        pynvml.nvmlShutdown()


def system_info(endpoints: Sequence[str], model: str, credentials: Credentials,
                gpus: list[dict]) -> dict:
    return {
        "client_host": host_info(),
        "servers": [server_info(endpoint, model, credentials) for endpoint in endpoints],
        "gpus": gpus,
    }
