"""The real model served by llama.cpp's llama-server: its Q4_1 GGUF as shipped, and the same
float32 weights that vLLM serves and the reference runs, converted to GGUF by llama.cpp's own
converter. Every id in the accuracy log is the server's own (those it leaves out of its stream
recovered exactly), and each run's accuracy against the reference is stated as measured.

Not with the vLLM module: its own scope, so that it runs beside the modules with real servers
rather than after them (make test's parallel part waits on the longest worker).
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from client_sut.accuracy.reference import read_reference
from client_sut.accuracy.rouge import ROUGE_KEYS, read_accuracy_log
from server.demo import free_port
from server.llamacpp import build_server, dequantized_gguf, start_server
from tests.e2e.conftest import (
    REAL_DATA,
    REAL_REFERENCE,
    REAL_SAMPLES,
    accuracy_run,
    official_test06,
)

pytestmark = pytest.mark.e2e
REPLAYED = 4  # samples whose ids are asked of the server again, without streaming


@pytest.fixture(scope="module", params=["q4_1", "f32"])
def llama_real(request, real_model, tmp_path_factory):
    """llama-server on the Q4_1 GGUF as shipped, then on the dequantized weights as GGUF."""
    binary = build_server()
    gguf = real_model.gguf if request.param == "q4_1" else dequantized_gguf(real_model)
    group = start_server(binary, gguf, free_port(8500), parallel=4, context=4 * 4096,
                         log_dir=tmp_path_factory.mktemp(f"llama-{request.param}"))
    yield request.param, group
    group.stop()


def test_llama_server_gives_every_id_and_its_accuracy_against_the_reference_is_stated(
        real_model, llama_real, run_cli):
    weights, group = llama_real
    url = group.endpoints[0]
    # The same weights one request at a time: llama.cpp's numbers depend on how requests are
    # batched, and the server's own ids are asked again below, one at a time.
    shape = ("--max-concurrency", "1") if weights == "f32" else ()
    run = accuracy_run(run_cli, url, real_model, "--scenario", "Offline", *shape)
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
        for index in range(REPLAYED):
            answer = ask(url + "/completion", {"prompt": list(prompt_ids(real_model, index)),
                                               "n_predict": 128, "temperature": 0, "top_k": 1,
                                               "return_tokens": True})
            logged = list(memoryview(bytes.fromhex(rows[index]["data"])).cast("i"))
            assert logged == answer["tokens"], index
    assert accuracy["outputs"]["finish"]["eos"] >= 1
    eos = read_reference(REAL_REFERENCE).eos_token_ids[0]
    assert "TEST06 verification complete" in official_test06(run, "Offline", eos)
    short = {key for key, ok in accuracy["checks"].items() if not ok}
    assert {note.split()[0] for note in accuracy["notes"]} == short  # none hidden
    assert accuracy["passed"] == (not short) and accuracy["checks"]["gen_len"]
    if weights == "f32":
        # vLLM's and the reference's own float32 weights, summed in llama.cpp's order: measured
        # 30 of 32 outputs identical, and the 2 that part from the reference cost ROUGE-2 and
        # ROUGE-L 1.5-1.7% on 32 articles (57 of 64 identical, ROUGE-2 98.9%, on all 64): the
        # 99% rule judged on a few dozen samples is moved by a few outputs. Said, not hidden.
        assert identical["samples"] >= REAL_SAMPLES * 0.8
        assert min(ratios[key] for key in ROUGE_KEYS) >= 0.97
    else:  # Q4_1 kernels round activations to 8 bits: measured 93-98% of the reference's ROUGE
        assert ratios["rouge1"] > 0.9


def prompt_ids(model, index: int) -> tuple[int, ...]:
    from transformers import AutoTokenizer

    from client_sut.config import PromptFormat
    from client_sut.data.dataset import load_samples, tokenize_prompts

    tokenizer = AutoTokenizer.from_pretrained(model.hf_dir)
    sample = load_samples(str(REAL_DATA), index + 1)[index]
    return tokenize_prompts(tokenizer, [sample], PromptFormat.CHAT)[0]


def ask(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)
