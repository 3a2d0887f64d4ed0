"""The end-to-end tests' data and vLLM servers: real vLLM on CPU with the demo model, started
once for its module (starting them takes about a minute) and stopped at its end."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.demo import free_port
from server.demo_corpus import write_corpus
from server.demo_model import build
from server.launch import load_profile, start_servers
from tests.conftest import REPO

# An end-to-end Server run's SLA: room for 2 shared cores, judged at p90 (LoadGen's early
# stopping certifies p90 with 128 queries where p99 needs 459).
SERVER_USER_CONF = ("llama3_1-8b.Server.ttft_latency = 10000\n"
                    "llama3_1-8b.Server.tpot_latency = 500\n"
                    "llama3_1-8b.Server.target_latency_percentile = 90\n")


@pytest.fixture(scope="module")
def vllm(tmp_path_factory):
    model_dir = build(REPO / "work" / "demo-model")
    group = start_servers(load_profile("cpu-demo"), model=str(model_dir), port=free_port(8100),
                          instances=2, log_dir=tmp_path_factory.mktemp("vllm-logs"))
    yield group, model_dir
    group.stop()


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("demo-data") / "demo_news.jsonl")
