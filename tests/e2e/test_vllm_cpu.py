"""End to end against the real vLLM OpenAI server on CPU, serving the demo model.

Two servers are started once for this module (tests/e2e/conftest.py); every run goes through
the real `client-sut run` command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

from tests.browser import visit_page
from tests.conftest import REPO, SHARED_DATA
from tests.e2e.conftest import SERVER_USER_CONF
from tests.integration.test_submission import CHECKER
from tests.integration.test_submission import SYSTEM_FILE as INTEGRATION_SYSTEM_FILE

pytestmark = pytest.mark.e2e


def base_args(group, dataset, samples: int) -> list[str]:
    return ["--endpoint", group.endpoints[0], "--dataset", str(dataset),
            "--total-sample-count", str(samples)]


def assert_counts_match_server(run) -> None:
    requests = run.requests()
    assert requests and all(r["error"] is None for r in requests)
    assert all(r["token_id_source"] == "server" for r in requests)
    # n_tokens given to LoadGen is vLLM's usage.completion_tokens, and every id was streamed.
    assert all(r["output_tokens"] == r["server_completion_tokens"] == r["streamed_tokens"]
               for r in requests)


def test_server_run_is_valid(vllm, demo_data, run_cli, tmp_path):
    group, _ = vllm
    # This checks the Server path end to end, not how fast 2 shared cores serve: two vLLM
    # instances and the client on them have stalled single requests for ~2 s, past the official
    # TTFT limit. A user.conf gives the SLA room, and judges it at p90, which LoadGen's early
    # stopping certifies with 128 queries (p99 needs 459); the run must say it is not official.
    user_conf = tmp_path / "user.conf"
    user_conf.write_text(SERVER_USER_CONF)
    run = run_cli(*base_args(group, demo_data, 64), "--scenario", "Server", "--target-qps", "6",
                  "--duration", "10", "--min-query-count", "128", "--user-conf", str(user_conf))
    assert run.returncode == 0, run.stdout + run.stderr
    loadgen = run.results["loadgen"]
    assert loadgen["result"] == "VALID" and loadgen["errors"] == []
    assert (loadgen["ttft_limit_ms"], loadgen["tpot_limit_ms"]) == (10_000, 500)
    assert any("latency limits TTFT 10000 ms / TPOT 500 ms are not the official 2000 / 100 ms"
               in note for note in run.results["compliance_notes"])
    assert any("latency judged at p90" in note for note in run.results["compliance_notes"])
    assert_counts_match_server(run)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_offline_run_on_real_cnn_dailymail(vllm, run_cli, api):
    group, _ = vllm
    run = run_cli(*base_args(group, SHARED_DATA, 24), "--scenario", "Offline", "--api", api,
                  "--duration", "0.5", "--min-query-count", "24")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.results["loadgen"]["result"] == "VALID"
    assert run.results["api"] == api
    assert_counts_match_server(run)


def test_accuracy_log_holds_exactly_the_ids_vllm_returned(vllm, demo_data, run_cli):
    group, model_dir = vllm
    samples = 6
    # One request at a time, so the replay below runs every prompt in the same batch shape.
    run = run_cli(*base_args(group, demo_data, samples), "--scenario", "Offline",
                  "--mode", "accuracy", "--max-concurrency", "1")
    # Random weights: the run finishes (no request error) and fails accuracy, as it must.
    assert run.returncode == 1 and run.results["accuracy"]["passed"] is False
    assert run.results["accuracy"]["gen_num"] == samples
    assert_counts_match_server(run)
    rows = {row["qsl_idx"]: row for row in
            json.loads((run.output_dir / "mlperf_log_accuracy.json").read_text())}
    assert sorted(rows) == list(range(samples))

    from transformers import AutoTokenizer

    from client_sut.data.dataset import build_prompt, load_samples
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    usage = {r["sample_index"]: r["server_completion_tokens"] for r in run.requests()}
    for index, sample in enumerate(load_samples(str(demo_data), limit=samples)):
        # The same request, not streamed, straight to vLLM: its answer is the oracle.
        body = {"model": str(model_dir), "prompt": tokenizer(build_prompt(sample.article))["input_ids"],
                "max_tokens": 128, "min_tokens": 1, "temperature": 0, "top_p": 1, "top_k": 1,
                "seed": 42, "return_token_ids": True}
        request = urllib.request.Request(group.endpoints[0] + "/v1/completions",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            expected = json.load(response)["choices"][0]["token_ids"]
        logged = list(memoryview(bytes.fromhex(rows[index]["data"])).cast("i"))
        assert logged == expected
        assert rows[index]["token_count"] == usage[index] == len(expected)


def test_test06_passes_against_real_vllm(vllm, demo_data, run_cli):
    group, _ = vllm
    run = run_cli(*base_args(group, demo_data, 64), "--scenario", "Server", "--target-qps", "8",
                  "--audit", "TEST06")
    assert run.returncode == 0, run.stdout + run.stderr
    audit = run.results["audit"]
    assert audit["passed"], audit
    assert audit["checks"] == {"first_token": True, "eos": True, "sample_length": True}
    assert audit["samples_checked"] >= 50
    assert run.results["loadgen"]["errors"] == []


def test_two_servers_share_the_load(vllm, demo_data, run_cli):
    group, _ = vllm
    run = run_cli(*base_args(group, demo_data, 32), "--endpoint", group.endpoints[1],
                  "--scenario", "Offline", "--duration", "0.5", "--min-query-count", "32",
                  "--max-concurrency", "8")
    assert run.returncode == 0, run.stdout + run.stderr
    counts = {e["url"]: e["requests"] for e in run.results["endpoints"]}
    assert set(counts) == set(group.endpoints)
    assert all(c >= 8 for c in counts.values()) and sum(counts.values()) >= 32
    assert all(e["errors"] == 0 for e in run.results["endpoints"])


def test_vllm_metrics_are_parsed_and_joined_to_a_run(vllm, demo_data, run_cli):
    """vLLM's own /metrics, read by name, and a run's window of them beside the client's."""
    from client_sut.observe.prometheus import parse_server_metrics

    group, _ = vllm
    with urllib.request.urlopen(group.endpoints[0] + "/metrics", timeout=30) as response:
        metrics = parse_server_metrics(response.read().decode())
    assert {"running", "waiting", "kv_cache_usage"} <= set(metrics.gauges)
    assert {"prompt_tokens", "generation_tokens", "preemptions"} <= set(metrics.counters)
    assert {"ttft", "itl", "queue_time"} <= set(metrics.histograms)
    run = run_cli(*base_args(group, demo_data, 16), "--scenario", "Offline", "--duration", "0.5",
                  "--min-query-count", "16")
    assert run.returncode == 0, run.stdout + run.stderr
    server = run.results["endpoints"][0]["server"]
    assert server["scraped"] and server["output_tokens_agree"], server
    assert server["server_generation_tokens"] == run.results["client"]["output_tokens"]
    assert server["ttft_ms"]["count"] == 16 and server["itl_ms"]["p50"] is not None
    assert run.results["system"]["servers"][0]["version"]  # vLLM answers /version
    assert (run.output_dir / "report.html").is_file()


def test_a_short_sweep_of_four_points_and_its_report(vllm, demo_data, tmp_path):
    """The curve against real vLLM: three concurrencies and Offline through the same client,
    each point's Endpoints files written, and the sweep's report drawn in Chromium."""
    group, _ = vllm
    done = subprocess.run(
        [sys.executable, "-m", "client_sut", "sweep", "--endpoint", group.endpoints[0],
         "--dataset", str(demo_data), "--total-sample-count", "16", "--concurrency", "1,2,8",
         "--point-duration", "2", "--warmup", "0", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    assert sweep["verdict"] == "complete"
    points = {p["name"]: p for p in sweep["points"]}
    assert list(points) == ["c0001", "c0002", "c0008", "offline"]
    for point in points.values():
        assert point["errors"] == 0 and point["loadgen_result"] == "VALID"
        assert point["requests"] % 16 == 0 and point["system_tokens_per_s"] > 0
        assert (tmp_path / point["dir"] / "performance" / "result_summary.json").is_file()
    # More streams in flight serve more tokens, each stream no faster.
    assert points["c0008"]["system_tokens_per_s"] > points["c0001"]["system_tokens_per_s"]
    assert points["c0008"]["tpot_ms"]["p90"] >= points["c0001"]["tpot_ms"]["p90"] * 0.8
    assert sweep["front"] and set(sweep["front"]) <= set(points)
    report = tmp_path / "report.html"
    visit = visit_page(report, "document.querySelectorAll('#fig-sweep svg path').length")
    assert visit.errors == [] and visit.values > 20


# The integration test's description, less the framework: the servers say what they run.
SYSTEM_FILE = INTEGRATION_SYSTEM_FILE.replace('framework = "client_sut emitter"\n', "")


@pytest.mark.skipif(not CHECKER.is_dir(), reason=f"MLCommons' checker is not at {CHECKER}")
def test_submission_flow_on_real_vllm(vllm, demo_data, tmp_path):
    """`client-sut submission` makes the Offline runs itself, assembles open/, runs MLCommons'
    checker and the extra checks. 8 samples: the checker wants the benchmark's 13,368-sample
    performance QSL and the summary is INVALID (600 s not served); the system description's
    framework and weights come from the servers themselves."""
    group, model_dir = vllm
    (tmp_path / "system.toml").write_text(SYSTEM_FILE)
    # 8 samples issued, none padded: Offline's expected rate times 600 s stays under 8.
    (tmp_path / "user.conf").write_text("*.Offline.target_qps = 0.01\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "client_sut", "submission", "--system-file",
         str(tmp_path / "system.toml"), "--checker", str(CHECKER), "--division", "open",
         "--scenario", "Offline", "--output-dir", str(out), "--user-conf",
         str(tmp_path / "user.conf"), "--skip-dataset-size-check",
         "--", "--endpoint", group.endpoints[0], "--dataset", str(demo_data),
         "--total-sample-count", "8", "--min-query-count", "8"],
        capture_output=True, text=True, timeout=900, cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads((out / "submission.json").read_text())
    # Everything the checker objects to is the short run's subset QSL.
    for error in report["official_checker"]["errors"]:
        assert re.search(r"performance_sample_count, found 8, needs to be >= 13368|^Some "
                         r"performance checks Checks failed|^NoResults |^SUMMARY: submission has "
                         r"errors", error), error
    assert {(f["scenario"], f["check"]) for f in report["extra_checks"]["findings"]} == {
        ("Offline", "summary")}
    scenario = out / "submission/open/TestOrg/results/emitter_cpu/llama3.1-8b/Offline"
    assert "client-sut run" in (scenario / "README.md").read_text()
    assert (scenario / "TEST06/verify_accuracy.txt").read_text().endswith(
        "TEST06 verification complete\n")
    system = json.loads((out / "submission/open/TestOrg/systems/emitter_cpu.json").read_text())
    assert system["framework"].startswith("vLLM ")
    measurements = json.loads((scenario / "measurements.json").read_text())
    assert measurements["starting_weights_filename"] == str(model_dir)
