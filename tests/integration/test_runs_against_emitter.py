"""Whole runs of `client-sut run` against the project's own emitter, with known timing.

The emitter speaks vLLM's streaming dialect, waits a known first-token delay, spaces its events
by a known gap, and records when it actually wrote each event; those records are the truth the
client's and LoadGen's figures are compared against.
"""

from __future__ import annotations

import json
import os
import statistics

import pytest
from transformers import AutoTokenizer

from client_sut.data.dataset import build_prompt, load_samples
from client_sut.servers.emitter import output_ids
from tests.conftest import SHARED_DATA

FIRST_TOKEN_MS, GAP_MS, TOKENS = 20.0, 2.0, 32
EMITTER_ARGS = ("--first-token-ms", str(FIRST_TOKEN_MS), "--gap-ms", str(GAP_MS),
                "--output-tokens", str(TOKENS))
SUMMARY_KEYS = {"p50", "p90", "p99", "mean", "max"}
PROBED = 1  # the dialect probe's one request per endpoint, before the warm-up


def common_args(emitter, tokenizer, samples: int = 100) -> list[str]:
    return ["--endpoint", emitter.url, "--tokenizer", str(tokenizer), "--dataset",
            str(SHARED_DATA), "--total-sample-count", str(samples)]


def truth_ms(log: list[dict]) -> tuple[float, float]:
    """Median first-token delay and median per-token gap, as the emitter actually wrote them."""
    ttft = [(e["write_ns"][0] - e["arrival_ns"]) / 1e6 for e in log]
    tpot = [(e["write_ns"][-1] - e["write_ns"][0]) / 1e6 / (len(e["token_ids"]) - 1) for e in log]
    return statistics.median(ttft), statistics.median(tpot)


@pytest.mark.timing  # its medians are held to the emitter's within 5 ms and 0.3 ms
def test_server_run_is_valid_and_matches_the_emitters_timing(start_emitter, demo_tokenizer,
                                                             run_cli):
    emitter = start_emitter(*EMITTER_ARGS)
    # 600 queries: LoadGen's early stopping needs ~460 at p99 before it can call a run VALID.
    run = run_cli(*common_args(emitter, demo_tokenizer), "--scenario", "Server",
                  "--target-qps", "100", "--duration", "5", "--min-query-count", "600")
    assert run.returncode == 0, run.stderr
    results = run.results
    assert results["loadgen"]["result"] == "VALID"
    assert results["loadgen"]["errors"] == []
    assert results["compliant"] is False and results["compliance_notes"]

    true_ttft, true_tpot = truth_ms(emitter.log())
    assert true_ttft >= FIRST_TOKEN_MS
    # LoadGen measures from the scheduled time, the client from the send: both sit within a
    # few ms of what the emitter really did.
    assert abs(results["loadgen"]["ttft_ms"]["p50"] - true_ttft) < 5.0
    assert abs(results["client"]["ttft_ms"]["p50"] - true_ttft) < 5.0
    assert abs(results["loadgen"]["tpot_ms"]["p50"] - true_tpot) < 0.3
    assert abs(results["client"]["tpot_ms"]["p50"] - true_tpot) < 0.3

    requests = run.requests()
    assert len(requests) == results["client"]["requests"] == results["client"]["issued"] >= 600
    assert all(r["output_tokens"] == TOKENS == r["streamed_tokens"] for r in requests)
    assert all(r["error"] is None and r["token_id_source"] == "server" for r in requests)

    # The self-check, from this real run: the first token reaches LoadGen after it arrived, and
    # LoadGen's view of TTFT is later than the client's by the issue and report lags.
    for r in requests:
        first_token = next(t for t, n in zip(r["event_ns"], r["event_tokens"]) if n)
        assert r["first_reported_ns"] >= first_token >= r["send_ns"] >= r["issue_ns"]
    check = results["self_check"]
    assert list(check["first_token_stamps"].values()) == ["kernel"]  # plain HTTP on Linux
    gap = check["loadgen_minus_client_ttft_ms"]
    assert 0 < gap["p50"] <= gap["p99"] <= gap["max"]
    assert gap["p50"] >= check["issue_lag_ms"]["p50"]
    assert 0 <= check["first_token_report_lag_ms"]["p50"] <= gap["p50"]  # a part of the gap
    assert check["event_loop_lag_ms"]["p50"] is not None and check["event_loop_lag_ms"]["p50"] >= 0
    assert check["streamed_tokens"] == TOKENS * len(requests)
    assert 0 < check["client_cpu_s"] and 0 < check["event_loop_busy_share"] < 1.5
    assert check["client_cpu_us_per_token"] == pytest.approx(
        check["client_cpu_s"] * 1e6 / check["streamed_tokens"], rel=1e-3)
    assert isinstance(check["warnings"], list)


def test_results_json_has_every_key_of_the_contract(start_emitter, demo_tokenizer, run_cli):
    emitter = start_emitter(*EMITTER_ARGS)
    run = run_cli(*common_args(emitter, demo_tokenizer, samples=20), "--scenario", "Server",
                  "--target-qps", "50", "--duration", "1", "--min-query-count", "20")
    assert run.returncode in (0, 1), run.stderr  # too few queries for early stopping: INVALID
    results = run.results
    for key in ("scenario", "mode", "model", "compliant", "compliance_notes", "loadgen",
                "client", "endpoints"):
        assert key in results
    loadgen = results["loadgen"]
    assert loadgen["result"] in ("VALID", "INVALID")
    assert loadgen["tokens_per_second"] > 0
    assert set(loadgen["ttft_ms"]) >= {"p50", "p90", "p99"}
    assert set(loadgen["tpot_ms"]) >= {"p50", "p90", "p99"}
    client = results["client"]
    for key in ("requests", "errors", "output_tokens", "output_tokens_per_second"):
        assert key in client
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "issue_lag_ms"):
        assert set(client[key]) == SUMMARY_KEYS and client[key]["p50"] is not None
    (endpoint,) = results["endpoints"]
    assert set(endpoint) >= {"url", "requests", "errors", "ttft_ms", "output_tokens"}
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "requests.jsonl"):
        assert (run.output_dir / name).is_file()


def test_offline_run_is_valid_and_counts_every_token(start_emitter, demo_tokenizer, run_cli):
    emitter = start_emitter(*EMITTER_ARGS)
    run = run_cli(*common_args(emitter, demo_tokenizer, samples=200), "--scenario", "Offline",
                  "--duration", "0.2", "--min-query-count", "200", "--max-concurrency", "64")
    assert run.returncode == 0, run.stderr
    results = run.results
    assert results["loadgen"]["result"] == "VALID"
    assert results["client"]["requests"] == results["client"]["issued"] >= 200
    assert results["client"]["output_tokens"] == TOKENS * results["client"]["requests"]
    # The client's rate is its tokens over its own span, first send to last end, as recorded.
    requests = run.requests()
    span_s = (max(r["end_ns"] for r in requests) - min(r["send_ns"] for r in requests)) / 1e9
    assert results["client"]["output_tokens_per_second"] == pytest.approx(
        results["client"]["output_tokens"] / span_s, rel=1e-4)
    # LoadGen counts the same tokens over a span that starts before the first send and ends
    # after the last completion it is told of: its rate can never be the higher one.
    assert results["loadgen"]["tokens_per_second"] <= results["client"]["output_tokens_per_second"]
    # Every measured request, the untimed warm-up before LoadGen started, and before it the
    # one request of the dialect probe.
    assert results["warmup"]["requests"] == 4 and results["warmup"]["errors"] == 0
    assert results["endpoints"][0]["dialect"]["probe_requests"] == PROBED
    assert len(emitter.log()) == results["client"]["requests"] + results["warmup"]["requests"] \
        + PROBED
    # Offline reports no first tokens to LoadGen: there is no LoadGen TTFT to compare with.
    assert results["self_check"]["loadgen_minus_client_ttft_ms"]["p50"] is None
    assert all(r["first_reported_ns"] is None for r in requests)


def test_client_stamps_events_after_the_emitter_wrote_them(start_emitter, demo_tokenizer,
                                                           run_cli):
    """Same clock on both sides: no event can arrive before it was written."""
    emitter = start_emitter(*EMITTER_ARGS)
    run = run_cli(*common_args(emitter, demo_tokenizer, samples=10), "--scenario", "Offline",
                  "--duration", "0.05", "--min-query-count", "10")
    assert run.results["client"]["errors"] == 0, run.stderr
    writes = {e["response_id"]: e["write_ns"] for e in emitter.log()}
    requests = run.requests()
    # Each response is told apart; the emitter also answered the untimed warm-up and probe.
    assert {r["response_id"] for r in requests} <= set(writes)
    assert len(writes) == len(requests) + run.results["warmup"]["requests"] + PROBED
    for r in requests:
        stamps = [t for t, n in zip(r["event_ns"], r["event_tokens"]) if n]
        assert len(stamps) == len(writes[r["response_id"]]) == TOKENS
        assert all(stamp >= write for stamp, write in zip(stamps, writes[r["response_id"]]))


def test_chat_role_chunk_is_not_taken_as_the_first_token(start_emitter, demo_tokenizer, run_cli):
    emitter = start_emitter(*EMITTER_ARGS)
    run = run_cli(*common_args(emitter, demo_tokenizer, samples=20), "--api", "chat",
                  "--scenario", "Offline", "--duration", "0.05", "--min-query-count", "20")
    assert run.results["client"]["errors"] == 0, run.stderr
    results = run.results
    assert results["prompt_form"] == "text"
    # The emitter sends a role-only chunk at once and the first token after 20 ms.
    assert results["client"]["ttft_ms"]["p50"] >= FIRST_TOKEN_MS
    assert all(r["event_tokens"][0] == 0 for r in run.requests())


@pytest.mark.parametrize("workers", ["0", "2", "auto"],
                         ids=["on-loadgen-process", "two-worker-processes", "auto-workers"])
def test_accuracy_log_holds_exactly_the_streamed_token_ids(start_emitter, demo_tokenizer,
                                                          run_cli, workers):
    emitter = start_emitter(*EMITTER_ARGS)
    run = run_cli(*common_args(emitter, demo_tokenizer, samples=12), "--scenario", "Server",
                  "--target-qps", "20", "--mode", "accuracy", "--workers", workers)
    # Scored, and failed: the emitter's ids are noise. No request failed.
    assert run.returncode == 1 and run.results["accuracy"]["passed"] is False, run.stderr
    assert run.results["client"]["errors"] == 0
    if workers == "auto":  # no calibration, so a worker per core beside LoadGen's, if two
        spare = len(os.sched_getaffinity(0)) - 1
        assert f"--workers auto: {spare if spare >= 2 else 0} (" in run.stderr
    rows = json.loads((run.output_dir / "mlperf_log_accuracy.json").read_text())
    assert sorted(row["qsl_idx"] for row in rows) == list(range(12))
    tokenizer = AutoTokenizer.from_pretrained(demo_tokenizer)
    samples = load_samples(str(SHARED_DATA), limit=12)
    for row in rows:
        prompt_ids = tokenizer(build_prompt(samples[row["qsl_idx"]].article))["input_ids"]
        expected = output_ids(prompt_ids, TOKENS)
        data = bytes.fromhex(row["data"])
        assert list(memoryview(data).cast("i")) == expected
        assert list(memoryview(bytes.fromhex(row["token_data"])).cast("i")) == expected[:1]
        assert row["token_count"] == TOKENS


def test_two_endpoints_share_the_load(start_emitter, demo_tokenizer, run_cli):
    first, second = start_emitter(*EMITTER_ARGS), start_emitter(*EMITTER_ARGS)
    run = run_cli(*common_args(first, demo_tokenizer, samples=100), "--endpoint", second.url,
                  "--scenario", "Offline", "--duration", "0.05", "--min-query-count", "100",
                  "--max-concurrency", "8")
    assert run.results["client"]["errors"] == 0, run.stderr
    endpoints = {e["url"]: e for e in run.results["endpoints"]}
    assert set(endpoints) == {first.url, second.url}
    counts = [endpoints[first.url]["requests"], endpoints[second.url]["requests"]]
    assert sum(counts) == run.results["client"]["requests"]
    # Every endpoint is probed and warmed up.
    untimed = run.results["warmup"]["requests_per_endpoint"] + PROBED
    assert counts == [len(first.log()) - untimed, len(second.log()) - untimed]
    # Least-outstanding balancing over equal servers: neither takes less than a third.
    assert min(counts) > sum(counts) / 3


def test_accuracy_run_is_scored_and_evaluate_agrees(start_emitter, demo_tokenizer, run_cli,
                                                    tmp_path):
    import subprocess
    import sys

    emitter = start_emitter(*EMITTER_ARGS)
    run = run_cli(*common_args(emitter, demo_tokenizer, samples=20), "--scenario", "Offline",
                  "--mode", "accuracy")
    accuracy = run.results["accuracy"]
    assert run.results["client"]["errors"] == 0
    assert accuracy["gen_num"] == 20 and accuracy["gen_len"] > 0
    assert accuracy["passed"] is False and run.returncode == 1  # the emitter's ids are noise
    assert json.loads((run.output_dir / "accuracy.json").read_text()) == accuracy
    # The same log through `client-sut evaluate`, as a log from any other harness would be.
    output = tmp_path / "again.json"
    evaluated = subprocess.run(
        [sys.executable, "-m", "client_sut", "evaluate", "--accuracy-log",
         str(run.output_dir / "mlperf_log_accuracy.json"), "--dataset", str(SHARED_DATA),
         "--tokenizer", str(demo_tokenizer), "--output", str(output)],
        capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 1, evaluated.stderr
    again = json.loads(output.read_text())
    assert {k: again[k] for k in ("rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len")} == \
        {k: accuracy[k] for k in ("rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len")}
    assert "rougeLsum" in evaluated.stdout and "FAILED" in evaluated.stdout


def test_test06_passes_when_the_server_streams_token_ids(start_emitter, demo_tokenizer,
                                                        run_cli):
    emitter = start_emitter(*EMITTER_ARGS)
    run = run_cli(*common_args(emitter, demo_tokenizer), "--scenario", "Server",
                  "--target-qps", "100", "--audit", "TEST06")
    assert run.returncode == 0, run.stdout + run.stderr
    audit = run.results["audit"]
    assert audit["passed"] and audit["checks"] == {"first_token": True, "eos": True,
                                                   "sample_length": True}
    assert audit["samples_checked"] >= 50
    assert run.results["loadgen"]["errors"] == []


def test_test06_fails_when_the_first_token_differs_from_the_output(start_emitter,
                                                                  demo_tokenizer, run_cli):
    # A server without token ids, streaming "Th", "e ", ...: the first event re-tokenizes to
    # "Th" while the whole answer starts with "The". TEST06 exists to catch such inexactness.
    emitter = start_emitter(*EMITTER_ARGS, "--text-only")
    run = run_cli(*common_args(emitter, demo_tokenizer), "--scenario", "Server",
                  "--target-qps", "100", "--audit", "TEST06")
    assert run.returncode == 1
    audit = run.results["audit"]
    assert audit["passed"] is False and audit["checks"]["first_token"] is False
    assert set(run.results["client"]["token_id_sources"]) == {"retokenized"}
