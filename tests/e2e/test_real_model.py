"""A real model end to end: SmolLM2-135M-Instruct summarizes real CNN/DailyMail articles, served
by vLLM for CPU (its dequantized float32 weights) and by llama-server (its Q4_1 GGUF as shipped,
and the same float32 weights as GGUF), each measured through the client's default path and
judged against the reference implementation (transformers' greedy generate on the float32
weights), as MLPerf judges a model.

The reference for the 64 shipped articles is a file in the project; a test recomputes some of
its samples and requires them equal, so it cannot go stale unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from client_sut.accuracy.audit import verify_test06
from client_sut.accuracy.reference import read_reference
from client_sut.accuracy.rouge import ROUGE_KEYS, read_accuracy_log
from server.demo import free_port
from server.launch import load_profile, start_servers
from server.llamacpp import build_server, dequantized_gguf, start_server
from server.real_model import prepare
from tests.conftest import REPO
from tests.integration.test_submission import CHECKER

pytestmark = pytest.mark.e2e

DATA = REPO / "server" / "demo_data" / "cnndm_validation_64.jsonl"
REFERENCE = REPO / "server" / "demo_data" / "reference.smollm2-135m-instruct.chat.json"
SAMPLES = 32
TEST06 = CHECKER / "compliance" / "TEST06" / "run_verification.py"


@pytest.fixture(scope="module")
def model():
    return prepare()


@pytest.fixture(scope="module")
def vllm_real(model, tmp_path_factory):
    group = start_servers(load_profile("cpu-demo"), model=str(model.hf_dir),
                          port=free_port(8400), log_dir=tmp_path_factory.mktemp("vllm-real"))
    yield group
    group.stop()


@pytest.fixture(scope="module", params=["q4_1", "f32"])
def llama_real(request, model, tmp_path_factory):
    """llama-server on the Q4_1 GGUF as shipped, then on the dequantized weights as GGUF."""
    binary = build_server()
    gguf = model.gguf if request.param == "q4_1" else dequantized_gguf(model)
    group = start_server(binary, gguf, free_port(8500), parallel=4, context=4 * 4096,
                         log_dir=tmp_path_factory.mktemp(f"llama-{request.param}"))
    yield request.param, group
    group.stop()


def accuracy_run(run_cli, url: str, model, *args: str):
    run = run_cli("--endpoint", url, "--tokenizer", str(model.hf_dir), "--dataset", str(DATA),
                  "--total-sample-count", str(SAMPLES), "--mode", "accuracy",
                  "--prompt-format", "chat", "--reference", str(REFERENCE), *args)
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


def test_the_shipped_reference_is_what_transformers_generates_today(model):
    """Two of its samples generated again, on this machine's transformers and PyTorch."""
    from client_sut.accuracy.generate import generate_reference, weights_sha256
    from client_sut.config import PromptFormat
    from client_sut.data.dataset import load_samples

    shipped = read_reference(REFERENCE)
    assert shipped.weights_sha256 == weights_sha256(str(model.hf_dir))
    again = generate_reference(str(model.hf_dir), load_samples(str(DATA), 2), dataset=str(DATA),
                               prompt_format=PromptFormat.CHAT)
    assert again.outputs == shipped.outputs[:2]


def test_vllm_serves_the_reference_outputs_and_passes_the_99_percent_rule(model, vllm_real,
                                                                         run_cli, tmp_path):
    # Server scenario: the first token goes to LoadGen too, so TEST06 checks it below.
    run = accuracy_run(run_cli, vllm_real.endpoints[0], model, "--scenario", "Server",
                       "--target-qps", "4")
    accuracy = run.results["accuracy"]
    assert accuracy["passed"], accuracy
    assert accuracy["category"] == "reference" and accuracy["gen_num"] == SAMPLES
    identical = accuracy["identical_outputs"]
    print(f"vLLM: {identical['samples']} of {identical['of']} outputs identical to the "
          f"reference; ratios {accuracy['reference']['ratios']}; outputs {accuracy['outputs']}")
    assert identical["samples"] >= SAMPLES * 0.8  # float32 on both sides: few differ
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
    eos = read_reference(REFERENCE).eos_token_ids[0]
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
         "--dataset", str(DATA), "--tokenizer", str(model.hf_dir), "--reference",
         str(REFERENCE)], capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    failed = json.loads((tmp_path / "accuracy.json").read_text())
    assert not failed["passed"] and not failed["checks"]["gen_len"]
    assert "accuracy FAILED against the reference" in done.stdout
    assert "note: gen_len is" in done.stdout


def test_llama_server_gives_every_id_and_its_accuracy_against_the_reference_is_stated(
        model, llama_real, run_cli):
    weights, group = llama_real
    url = group.endpoints[0]
    # The same weights one request at a time: llama.cpp's numbers depend on how requests are
    # batched, and the server's own ids are asked again below, one at a time.
    shape = ("--max-concurrency", "1") if weights == "f32" else ()
    run = accuracy_run(run_cli, url, model, "--scenario", "Offline", *shape)
    accuracy = run.results["accuracy"]
    ratios, identical = accuracy["reference"]["ratios"], accuracy["identical_outputs"]
    print(f"llama-server, {weights} weights: {identical['samples']} of {identical['of']} outputs "
          f"identical to the reference (dequantized float32); ratios {ratios}; verdict "
          f"{'PASSED' if accuracy['passed'] else 'FAILED'}; outputs {accuracy['outputs']}")
    # Every id it generated is in the log: those it streamed, and those it left out (a token
    # ending inside a UTF-8 character) recovered exactly.
    requests = run.requests()
    assert {r["token_id_source"] for r in requests} <= {"server", "server_ids_recovered"}
    accounting = run.results["client"]["token_accounting"]
    assert accounting["disagreements"]["usage_vs_server_ids"]["disagreed"] == 0
    if weights == "f32":
        # The server's own ids, asked again without streaming. Only here: with Q4_1 kernels
        # its numbers depend on what its prompt cache held (every prompt shares the chat
        # template's opening), and a replay can part from the run after a few dozen tokens.
        rows = {row["qsl_idx"]: row for row in read_accuracy_log(
            run.output_dir / "mlperf_log_accuracy.json")}
        for index in range(8):
            answer = ask(url + "/completion", {"prompt": list(prompt_ids(model, index)),
                                               "n_predict": 128, "temperature": 0, "top_k": 1,
                                               "return_tokens": True})
            logged = list(memoryview(bytes.fromhex(rows[index]["data"])).cast("i"))
            assert logged == answer["tokens"], index
    assert accuracy["outputs"]["finish"]["eos"] >= 1
    eos = read_reference(REFERENCE).eos_token_ids[0]
    assert "TEST06 verification complete" in official_test06(run, "Offline", eos)
    short = {key for key, ok in accuracy["checks"].items() if not ok}
    assert {note.split()[0] for note in accuracy["notes"]} == short  # none hidden
    assert accuracy["passed"] == (not short) and accuracy["checks"]["gen_len"]
    if weights == "f32":
        # vLLM's and the reference's own float32 weights, summed in llama.cpp's order: measured
        # 30 of 32 outputs identical, and the 2 that part from the reference cost ROUGE-2 and
        # ROUGE-L 1.5-1.7% on 32 articles (57 of 64 identical, ROUGE-2 98.9%, on all 64): the
        # 99% rule judged on a few dozen samples is moved by a few outputs. Said, not hidden.
        assert identical["samples"] >= SAMPLES * 0.8
        assert min(ratios[key] for key in ROUGE_KEYS) >= 0.97
    else:  # Q4_1 kernels round activations to 8 bits: measured 93-98% of the reference's ROUGE
        assert ratios["rouge1"] > 0.9


def prompt_ids(model, index: int) -> tuple[int, ...]:
    from transformers import AutoTokenizer

    from client_sut.config import PromptFormat
    from client_sut.data.dataset import load_samples, tokenize_prompts

    tokenizer = AutoTokenizer.from_pretrained(model.hf_dir)
    sample = load_samples(str(DATA), index + 1)[index]
    return tokenize_prompts(tokenizer, [sample], PromptFormat.CHAT)[0]


def ask(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)
