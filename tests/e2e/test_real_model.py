"""A real model end to end: SmolLM2-135M-Instruct summarizes real CNN/DailyMail articles, served
by vLLM for CPU (its dequantized float32 weights) through the client's default path and judged
against the reference implementation (transformers' greedy generate on the same weights), as
MLPerf judges a model. llama-server's runs are in test_real_model_llamacpp.py.

The reference for the 64 shipped articles is a file in the project; a test recomputes some of
its samples and requires them equal, so it cannot go stale unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from client_sut.accuracy.audit import verify_test06
from client_sut.accuracy.reference import read_reference
from client_sut.accuracy.rouge import read_accuracy_log
from server.demo import free_port
from server.launch import load_profile, start_servers
from tests.conftest import REPO
from tests.e2e.conftest import (
    REAL_DATA,
    REAL_REFERENCE,
    REAL_SAMPLES,
    accuracy_run,
    official_test06,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def vllm_real(real_model, tmp_path_factory):
    group = start_servers(load_profile("cpu-demo"), model=str(real_model.hf_dir),
                          port=free_port(8400), log_dir=tmp_path_factory.mktemp("vllm-real"))
    yield group
    group.stop()


def test_the_shipped_reference_is_what_transformers_generates_today(real_model):
    """One of its samples generated again, on this machine's transformers and PyTorch."""
    from client_sut.accuracy.generate import generate_reference, weights_sha256
    from client_sut.config import PromptFormat
    from client_sut.data.dataset import load_samples

    shipped = read_reference(REAL_REFERENCE)
    assert shipped.weights_sha256 == weights_sha256(str(real_model.hf_dir))
    again = generate_reference(str(real_model.hf_dir), load_samples(str(REAL_DATA), 1),
                               dataset=str(REAL_DATA), prompt_format=PromptFormat.CHAT)
    assert again.outputs == shipped.outputs[:1]


def test_vllm_serves_the_reference_outputs_and_passes_the_99_percent_rule(real_model, vllm_real,
                                                                         run_cli, tmp_path):
    # Server scenario: the first token goes to LoadGen too, so TEST06 checks it below.
    run = accuracy_run(run_cli, vllm_real.endpoints[0], real_model, "--scenario", "Server",
                       "--target-qps", "4")
    accuracy = run.results["accuracy"]
    assert accuracy["passed"], accuracy
    assert accuracy["category"] == "reference" and accuracy["gen_num"] == REAL_SAMPLES
    identical = accuracy["identical_outputs"]
    print(f"vLLM: {identical['samples']} of {identical['of']} outputs identical to the "
          f"reference; ratios {accuracy['reference']['ratios']}; outputs {accuracy['outputs']}")
    assert identical["samples"] >= REAL_SAMPLES * 0.8  # float32 on both sides: few differ
    # Real answers: some end at EOS, and their lengths vary.
    outputs = accuracy["outputs"]
    assert outputs["finish"]["eos"] >= 1 and outputs["tokens"]["min"] < outputs["tokens"]["max"]
    # Every id logged is one vLLM streamed, and its count is the server's usage.
    requests = run.requests()
    assert all(r["token_id_source"] == "server" for r in requests)
    assert all(r["output_tokens"] == r["server_completion_tokens"] == r["streamed_tokens"]
               for r in requests)
    assert run.results["loadgen"]["errors"] == []
    # TEST06's checks on these real outputs: the official script's and ours.
    eos = read_reference(REAL_REFERENCE).eos_token_ids[0]
    verdict = official_test06(run, "Server", eos)
    assert "First token check pass: True" in verdict and "EOS check pass: True" in verdict
    assert "Sample length check pass: True" in verdict
    ours = verify_test06(read_accuracy_log(run.output_dir / "mlperf_log_accuracy.json"),
                         eos_token_id=eos, check_first_token=True)
    assert ours["passed"], ours

    # A planted fault: the same outputs cut at 64 tokens fail the rule, and say which figure.
    rows = json.loads((run.output_dir / "mlperf_log_accuracy.json").read_text())
    for row in rows:
        row["data"] = row["data"][:64 * 8]
    truncated = tmp_path / "mlperf_log_accuracy.json"
    truncated.write_text(json.dumps(rows))
    done = subprocess.run(
        [sys.executable, "-m", "client_sut", "evaluate", "--accuracy-log", str(truncated),
         "--dataset", str(REAL_DATA), "--tokenizer", str(real_model.hf_dir), "--reference",
         str(REAL_REFERENCE)], capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    failed = json.loads((tmp_path / "accuracy.json").read_text())
    assert not failed["passed"] and not failed["checks"]["gen_len"]
    assert "accuracy FAILED against the reference" in done.stdout
    assert "note: gen_len is" in done.stdout
