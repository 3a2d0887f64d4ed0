"""The end-to-end tests' data and vLLM servers: real vLLM on CPU with the demo model, started
once for its module (starting them takes about a minute) and stopped at its end; the real
model, its shipped articles and reference, and what its tests share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.demo import REAL_DATA, REAL_REFERENCE, REAL_SAMPLES, free_port
from server.demo_corpus import write_corpus
from server.demo_model import build
from server.launch import load_profile, start_servers
from server.real_model import prepare
from tests.conftest import REPO
from tests.integration.test_submission import CHECKER

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


# The real model's accuracy runs are the demo's: the shipped articles, their reference, 32.
TEST06 = CHECKER / "compliance" / "TEST06" / "run_verification.py"


@pytest.fixture(scope="session")
def real_model():
    """SmolLM2-135M-Instruct's files, prepared once per machine (make test does it first)."""
    return prepare()


def accuracy_run(run_cli, url: str, model, *args: str):
    """The real model's accuracy run over the shipped articles, judged against the reference."""
    run = run_cli("--endpoint", url, "--tokenizer", str(model.hf_dir), "--dataset",
                  str(REAL_DATA), "--total-sample-count", str(REAL_SAMPLES), "--mode",
                  "accuracy", "--prompt-format", "chat", "--reference", str(REAL_REFERENCE),
                  *args)
    assert run.results["client"]["errors"] == 0, run.stderr[-3000:]
    return run


def official_test06(run, scenario: str, eos: int) -> str:
    """compliance/TEST06/run_verification.py as a program, its EOS id given as a number (its
    flag is parsed as a string, which no id equals)."""
    out = run.output_dir / "TEST06"
    code = ("import sys, runpy; import argparse; parse = argparse.ArgumentParser.parse_args\n"
            "def as_int(self, *a, **k):\n    args = parse(self, *a, **k)\n"
            "    args.eos_token_id = int(args.eos_token_id); return args\n"
            "argparse.ArgumentParser.parse_args = as_int\n"
            f"sys.argv = ['run_verification.py', '-c', {str(run.output_dir)!r}, '-o', "
            f"{str(out)!r}, '-s', {scenario!r}, '-e', '{eos}']\n"
            f"runpy.run_path({str(TEST06)!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return (out / "TEST06" / "verify_accuracy.txt").read_text()
