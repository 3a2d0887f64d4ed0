"""End to end against a real llama.cpp `llama-server` on CPU, serving the demo model as GGUF.

llama-server is built from the llama-cpp-python sdist's llama.cpp source once per machine
(server/llamacpp.py; `make test` builds it first). It speaks its own dialect: the generated ids
only as `logprobs.content[].id` when asked with `n_probs`, usage on the finish chunk, its context
per slot at `/props`, `llamacpp:` metrics, and it closes the connection after every streamed
response though its headers say keep-alive. Every run goes through the real `client-sut run`
with its default flags.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from server.demo import free_port
from server.demo_model import build as build_demo_model
from server.llamacpp import build_server, convert, start_server
from tests.conftest import REPO, SHARED_DATA
from tests.e2e.conftest import SERVER_USER_CONF

# Its Server run needs the cores that llama-server's capacity was measured with (run beside
# the other tests it served a sixth of it): make test runs it with the timing tests, alone.
pytestmark = [pytest.mark.e2e, pytest.mark.timing]

SLOTS = 4


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """The binary, the demo model as GGUF, and one server with SLOTS slots of 8,192 tokens."""
    binary = build_server()
    model_dir = build_demo_model(REPO / "work" / "demo-model")
    model = convert(model_dir, REPO / "work" / "demo-model.gguf")
    logs = tmp_path_factory.mktemp("llama-logs")
    group = start_server(binary, model, free_port(8300), parallel=SLOTS,
                         context=SLOTS * 8192, log_dir=logs)
    yield group, binary, model, model_dir, logs
    group.stop()


def client_args(url: str, model_dir, samples: int) -> list[str]:
    return ["--endpoint", url, "--tokenizer", str(model_dir), "--dataset", str(SHARED_DATA),
            "--total-sample-count", str(samples)]


def ask(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def test_accuracy_log_holds_every_id_llama_server_generated_or_says_why_not(llama, run_cli):
    group, *_, model_dir, _ = llama
    url, samples = group.endpoints[0], 8
    # One request at a time, as an accuracy run may be made (every second request failed so,
    # on a connection the server had closed), and so the replay below runs in the same shape.
    run = run_cli(*client_args(url, model_dir, samples), "--scenario", "Offline",
                  "--mode", "accuracy", "--max-concurrency", "1")
    assert run.results["client"]["errors"] == 0, run.stderr[-2000:]
    assert run.results["accuracy"]["gen_num"] == samples  # random weights: it fails ROUGE
    accounting = run.results["client"]["token_accounting"]
    assert accounting["disagreements"]["usage_vs_server_ids"]["disagreed"] == 0
    rows = {row["qsl_idx"]: row for row in
            json.loads((run.output_dir / "mlperf_log_accuracy.json").read_text())}
    requests = {r["sample_index"]: r for r in run.requests()}

    from transformers import AutoTokenizer

    from client_sut.data.dataset import build_prompt, load_samples
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    sources = set()
    for index, sample in enumerate(load_samples(str(SHARED_DATA), limit=samples)):
        # The same prompt, not streamed, to llama-server's own API, which returns every id it
        # generated (return_tokens): the oracle.
        answer = ask(url + "/completion", {
            "prompt": tokenizer(build_prompt(sample.article))["input_ids"], "n_predict": 128,
            "temperature": 0, "top_k": 1, "return_tokens": True})
        generated = answer["tokens"]
        logged = list(memoryview(bytes.fromhex(rows[index]["data"])).cast("i"))
        assert rows[index]["token_count"] == requests[index]["output_tokens"] == len(generated)
        source = requests[index]["token_id_source"]
        sources.add(source)
        if source in ("server", "server_ids_recovered"):
            # Every id, those it streamed and those it left out (a token ending inside a UTF-8
            # character gets no chunk: recovered from the text's bytes and its running count).
            assert logged == generated
        else:
            # The random model draws invalid UTF-8, which the server sends as U+FFFD: the bytes,
            # and so the ids, are gone; the whole text is tokenized, as the source says.
            assert source == "retokenized_ids_missing"
            assert "\ufffd" in answer["content"]
            assert tokenizer.decode(logged) == tokenizer.decode(generated) == answer["content"]
    assert "server" in sources


def test_a_server_run_is_valid_with_its_dialect_found_and_its_metrics_agreeing(llama, demo_data,
                                                                              run_cli, tmp_path):
    group, *_, model_dir, _ = llama
    # The Server path end to end at 6 QPS, with the SLA room of the vLLM Server test.
    user_conf = tmp_path / "user.conf"
    user_conf.write_text(SERVER_USER_CONF)
    run = run_cli("--endpoint", group.endpoints[0], "--tokenizer", str(model_dir), "--dataset",
                  str(demo_data), "--total-sample-count", "64", "--scenario", "Server",
                  "--target-qps", "6", "--duration", "10", "--min-query-count", "128",
                  "--user-conf", str(user_conf))
    assert run.returncode == 0, run.stdout + run.stderr
    loadgen = run.results["loadgen"]
    assert loadgen["result"] == "VALID" and loadgen["errors"] == []
    client = run.results["client"]
    assert client["errors"] == 0 and client["requests"] >= 128
    [endpoint] = run.results["endpoints"]
    assert endpoint["dialect"]["name"] == "llamacpp"
    capabilities = endpoint["capabilities"]
    assert capabilities["token_prompt"] is True and capabilities["refused"] == []
    assert (capabilities["ids"], capabilities["usage"]) == ("logprobs", "inline")
    # It closes every connection after a streamed response: found, said, and no request lost.
    assert endpoint["connection_per_request"] is True
    assert any("ignores MLPerf's min_tokens 1" in note
               for note in run.results["compliance_notes"])
    server = endpoint["server"]
    assert server["scraped"], server  # llamacpp: names, at /metrics
    assert server["server_generation_tokens"] == client["output_tokens"]
    assert server["output_tokens_agree"] is True


def test_a_prompt_longer_than_a_slot_is_bad_input_before_anything_is_sent(llama, run_cli):
    _, binary, model, model_dir, logs = llama
    small = start_server(binary, model, free_port(8320), parallel=SLOTS, context=SLOTS * 512,
                         log_dir=logs)
    try:
        run = run_cli(*client_args(small.endpoints[0], model_dir, 16), "--scenario", "Offline")
    finally:
        small.stop()
    assert run.returncode == 2
    line = run.stderr.strip().splitlines()[-1]
    assert "512" in line and "/props" in line, line
    assert not (run.output_dir / "results.json").exists()


def test_a_killed_llama_server_fails_its_requests_and_loses_nothing(llama, tmp_path):
    _, binary, model, model_dir, logs = llama
    doomed = start_server(binary, model, free_port(8340), parallel=SLOTS,
                          context=SLOTS * 8192, log_dir=logs)
    url, output_dir = doomed.endpoints[0], tmp_path / "run"
    client = subprocess.Popen(
        [sys.executable, "-m", "client_sut", "run", "--output-dir", str(output_dir),
         *client_args(url, model_dir, 24), "--scenario", "Server", "--target-qps", "2",
         "--duration", "10", "--min-query-count", "20", "--progress", "none", "--no-report"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Killed once LoadGen runs (its log exists: the warm-up is over) and the server has
        # generated for the measured requests.
        until(lambda: (output_dir / "mlperf_log_detail.txt").exists(), "LoadGen to start")
        before = tokens_predicted(url)
        until(lambda: tokens_predicted(url) >= before + 64, "measured tokens")
        os.killpg(doomed.processes[0].pid, signal.SIGKILL)
        _, stderr = client.communicate(timeout=180)
    finally:
        client.kill()
        doomed.stop()
    assert client.returncode == 1, stderr
    results = json.loads((output_dir / "results.json").read_text())
    counts = results["client"]
    assert counts["issued"] == counts["requests"] and 0 < counts["errors"] < counts["requests"]
    assert set(counts["errors_by_kind"]) <= {"disconnected", "refused"}
    [endpoint] = results["endpoints"]
    assert endpoint["health"]["state"] == "stopped"
    assert "it did not come back" in stderr


def tokens_predicted(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("llamacpp:tokens_predicted_total "):
                return float(line.split()[1])
    raise AssertionError("llama-server has no llamacpp:tokens_predicted_total")


def until(condition, what: str, timeout_s: float = 120.0) -> None:
    """Polls a condition of another process (bounded in time)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
