"""`client-sut sla` against the emitter given a server's capacity: at most K streams generate
at once and the rest wait in arrival order, so the capacity is K / (first-token delay +
(tokens - 1) x gap) and past it the queue, and TTFT with it, grows without bound."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED_DATA, wait_for_requests

# The searches' verdicts rest on the emitter's known capacity: run with the cores to
# themselves (make test runs the timing tests after the parallel ones).
pytestmark = pytest.mark.timing

K, FIRST_TOKEN_MS, GAP_MS, TOKENS = 16, 20.0, 5.0, 16
CAPACITY_QPS = K / ((FIRST_TOKEN_MS + (TOKENS - 1) * GAP_MS) / 1000)  # 168.4
SERVER_LIKE = ("--max-running", str(K), "--first-token-ms", str(FIRST_TOKEN_MS),
               "--gap-ms", str(GAP_MS), "--output-tokens", str(TOKENS))
LIMITS = ("--ttft-limit-ms", "200")
CONFIRM_S = "6"
SLA_TIMEOUT_S = 900
PROBE_KEYS = {"target_qps", "duration_s", "requests", "result", "ttft_p99_ms", "tpot_p99_ms",
              "errors", "early_stopping_met", "verdict", "reason", "dir"}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def deployment(emitter, tokenizer) -> list[str]:
    return ["--endpoint", emitter.url, "--tokenizer", str(tokenizer), "--dataset",
            str(SHARED_DATA)]


def sla(*args: str, timeout: float = SLA_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "client_sut", "sla", *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def search(tmp_path_factory, demo_tokenizer):
    """One search against a server-like emitter, shared by the tests that read it."""
    from client_sut.servers.emitter import EmitterProcess

    emitter = EmitterProcess(*SERVER_LIKE)
    output_dir = tmp_path_factory.mktemp("sla")
    try:
        done = sla(*deployment(emitter, demo_tokenizer), *LIMITS, "--probe-duration", "3",
                   "--confirm-duration", CONFIRM_S, "--max-probes", "10",
                   "--output-dir", str(output_dir))
        yield emitter, output_dir, done
    finally:
        emitter.stop()


def test_the_confirmed_answer_lies_at_the_edge_that_independent_runs_show(search, run_cli,
                                                                          demo_tokenizer):
    emitter, output_dir, done = search
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((output_dir / "sla.json").read_text())
    answer = result["answer_qps"]
    assert result["confirmed"] is True
    assert 0.6 * CAPACITY_QPS < answer < CAPACITY_QPS
    assert f"serves {answer:g} queries/s within the Server SLA" in done.stdout
    assert len(result["probes"]) <= 10
    # Independent runs at the confirmation's size: 10% above the answer is INVALID, 10% below
    # is VALID.
    for factor, expected in ((1.1, "INVALID"), (0.9, "VALID")):
        run = run_cli(*deployment(emitter, demo_tokenizer), "--scenario", "Server",
                      "--target-qps", f"{answer * factor:.4g}", "--duration", CONFIRM_S,
                      "--min-query-count", "505", *LIMITS)
        assert run.results["loadgen"]["result"] == expected, (factor, run.stderr[-2000:])


def test_sla_json_keeps_the_contract(search):
    _, output_dir, done = search
    result = json.loads((output_dir / "sla.json").read_text())
    assert result["scenario"] == "Server"
    assert result["limits"] == {"ttft_ms": 200.0, "tpot_ms": 100.0, "official": False,
                                "percentile": 99}
    assert result["compliant"] is False and result["compliance_notes"]
    assert result["lowest_failing_qps"] > result["answer_qps"]
    assert result["binding_constraint"] == "ttft"  # TPOT is the same at any load here
    assert 0 < result["goodput"]["share"] <= 1 and result["goodput"]["requests_per_second"] > 0
    assert result["interrupted"] is False
    # The start: the edge a three-point curve predicts (Offline, concurrency 1 and the one
    # that at one-in-flight latency would serve 3/4 of Offline's rate), near the capacity.
    start = result["start"]
    assert start["rule"].startswith("predicted from 3 start points"), start["rule"]
    assert [p["dir"] for p in start["points"]][:2] == ["start-offline", "start-c0001"]
    assert 0.5 * CAPACITY_QPS <= start["qps"] <= CAPACITY_QPS
    verdicts = {probe["verdict"] for probe in result["probes"]}
    assert {"pass", "fail"} <= verdicts
    for probe in result["probes"] + [result["confirmation"]]:
        assert PROBE_KEYS <= probe.keys()
        run = json.loads((output_dir / probe["dir"] / "results.json").read_text())
        assert (output_dir / probe["dir"] / "mlperf_log_detail.txt").is_file()
        assert run["settings"]["target_qps"] == probe["target_qps"]
        assert run["warmup"]["requests"] == 4  # the default warm-up, every run
    confirmation = result["confirmation"]
    assert confirmation["verdict"] == "pass" and confirmation["result"] == "VALID"
    assert confirmation["target_qps"] == result["answer_qps"]
    # An overloaded probe is cut short rather than run to its end.
    assert any(probe["stopped_early"] for probe in result["probes"])


def test_interrupt_writes_what_was_found_and_exits_130(start_emitter, demo_tokenizer, tmp_path):
    emitter = start_emitter(*SERVER_LIKE)
    output_dir = tmp_path / "sla"
    process = subprocess.Popen(
        [sys.executable, "-m", "client_sut", "sla", *deployment(emitter, demo_tokenizer),
         *LIMITS, "--start-qps", "50", "--probe-duration", "60", "--output-dir",
         str(output_dir)], cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        wait_for_requests(emitter, 20)  # the first probe is under way
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    result = json.loads((output_dir / "sla.json").read_text())
    assert result["interrupted"] is True and result["confirmed"] is False
    assert result["answer_qps"] is None
    [probe] = result["probes"]
    assert probe["interrupted"] is True and probe["verdict"] == "undecided"
    assert json.loads((output_dir / probe["dir"] / "results.json").read_text())["interrupted"]
    assert "interrupted" in stdout


@pytest.mark.parametrize("args, message", [
    (("--tolerance", "2"), "--tolerance"),
    (("--scenario", "Offline"), "Server or Interactive"),
    (("--max-probes", "1"), "--max-probes"),
    (("--ttft-limit-ms", "-5"), "--ttft-limit-ms"),
    (("--probe-duration", "0"), "--probe-duration"),
])
def test_bad_input_exits_2_before_any_probe(start_emitter, demo_tokenizer, tmp_path, args,
                                            message):
    emitter = start_emitter()
    output_dir = tmp_path / "sla"
    done = sla(*deployment(emitter, demo_tokenizer), "--output-dir", str(output_dir), *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert emitter.log() == []  # nothing was sent
    assert not (output_dir / "sla.json").exists()


def test_an_unreachable_endpoint_exits_2_before_any_probe(demo_tokenizer, tmp_path):
    output_dir = tmp_path / "sla"
    done = sla("--endpoint", "http://127.0.0.1:9", "--tokenizer", str(demo_tokenizer),
               "--dataset", str(SHARED_DATA), "--start-qps", "5", "--output-dir",
               str(output_dir))
    assert done.returncode == 2, done.stderr
    assert "127.0.0.1:9" in done.stderr
    assert not (output_dir / "sla.json").exists()
