"""The real model served by llama.cpp's llama-server, its Q4_1 GGUF as shipped, through the
client's default path. Every id in the accuracy log is the server's own (those it leaves out of
its stream, tokens that end inside a UTF-8 character, recovered exactly), TEST06 holds on its
real outputs, and its accuracy against the reference implementation (transformers on the
dequantized float32 weights) is stated as measured: Q4_1 kernels round activations to 8 bits.

With the timing tests, alone: beside the modules with real servers, its 4 slots served 32
articles so slowly that 23 requests passed the first-byte timeout. And the client holds no more
in flight than the server has slots: llama-server sends no headers while a request waits for a
slot, so 28 queued there waited up to a minute with no byte (6 passed the first-byte timeout in
one run); waiting in the client, Offline's issue lag holds that wait by design.
"""

from __future__ import annotations

import pytest

from client_sut.accuracy.reference import read_reference
from server.demo import free_port
from server.llamacpp import build_server, start_server
from tests.e2e.conftest import REAL_REFERENCE, accuracy_run, official_test06

pytestmark = [pytest.mark.e2e, pytest.mark.timing]
SLOTS = 4


@pytest.fixture(scope="module")
def llama_real(real_model, tmp_path_factory):
    group = start_server(build_server(), real_model.gguf, free_port(8500), parallel=SLOTS,
                         context=4 * 4096, log_dir=tmp_path_factory.mktemp("llama-real"))
    yield group
    group.stop()


def test_llama_server_gives_every_id_and_its_accuracy_against_the_reference_is_stated(
        real_model, llama_real, run_cli):
    run = accuracy_run(run_cli, llama_real.endpoints[0], real_model, "--scenario", "Offline",
                       "--max-concurrency", str(SLOTS))
    accuracy = run.results["accuracy"]
    ratios, identical = accuracy["reference"]["ratios"], accuracy["identical_outputs"]
    print(f"llama-server, Q4_1: {identical['samples']} of {identical['of']} outputs identical to "
          f"the reference; ratios {ratios}; {'PASSED' if accuracy['passed'] else 'FAILED'}; "
          f"outputs {accuracy['outputs']}")
    # Every id it generated is in the log: those it streamed, and those it left out recovered.
    requests = run.requests()
    assert {r["token_id_source"] for r in requests} <= {"server", "server_ids_recovered"}
    accounting = run.results["client"]["token_accounting"]
    assert accounting["disagreements"]["usage_vs_server_ids"]["disagreed"] == 0
    assert all(r["output_tokens"] == r["server_completion_tokens"] for r in requests)
    # Real answers: lengths vary, some end at EOS; TEST06's checks hold on them.
    assert accuracy["outputs"]["finish"]["eos"] >= 1
    eos = read_reference(REAL_REFERENCE).eos_token_ids[0]
    assert "TEST06 verification complete" in official_test06(run, "Offline", eos)
    # The verdict names every figure that fell short; none is hidden. Measured in two runs:
    # 3 and 6 of 32 outputs identical, ROUGE-L 93.4% and 98.7% of the reference's: FAILED, by
    # the Q4_1 kernels' numbers, which also move with how the server batched the requests (the
    # same weights in float32 on llama-server: 30 of 32 identical; on vLLM: 32 of 32, 100%).
    short = {key for key, ok in accuracy["checks"].items() if not ok}
    assert {note.split()[0] for note in accuracy["notes"]} == short
    assert accuracy["passed"] == (not short) and accuracy["checks"]["gen_len"]
    assert ratios["rouge1"] > 0.9
