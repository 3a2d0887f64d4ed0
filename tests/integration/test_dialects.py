"""Other servers' dialects, spoken by the emitter as each server's source has them: before the
run a probe finds what each accepts of the client's request, every request is sent as the server
takes it, and the stream is read exactly, with every deviation from MLPerf named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED_DATA

TOKENS, SAMPLES = 8, 24
FAST = ("--output-tokens", str(TOKENS), "--first-token-ms", "2", "--gap-ms", "1")
# What the probe must find of each: its kind, the prompt form, what it refuses, ids and usage.
EXPECTED = {
    "sglang": ("sglang", True, [], "streamed", "chunk"),
    "trtllm": ("trtllm", True, ["return_token_ids"], "none", "chunk"),
    "tgi": ("tgi", False, [], "none", "inline"),
    "openai": ("openai", True, ["top_k", "min_tokens", "return_token_ids"], "none", "chunk"),
    "ollama": ("ollama", False, [], "none", "every_chunk"),
    "llamacpp": ("llamacpp", True, [], "logprobs", "inline"),
    "nim": ("nim", True, [], "streamed", "chunk"),  # vLLM inside; said by its /v1/metadata
}
NOTED = {"trtllm": [], "sglang": [], "nim": [],
         "tgi": ["ignores MLPerf's min_tokens 1", "ignores MLPerf's top_k 1 (greedy)",
                 "refuses a prompt of token ids"],
         "openai": ["refuses MLPerf's min_tokens 1", "refuses MLPerf's top_k 1 (greedy)"],
         "ollama": ["ignores MLPerf's min_tokens 1", "refuses a prompt of token ids"],
         "llamacpp": ["ignores MLPerf's min_tokens 1"]}


@pytest.mark.parametrize("dialect", sorted(EXPECTED))
def test_a_run_with_default_flags_serves_every_request_of_each_dialect(start_emitter,
                                                                       demo_tokenizer,
                                                                       run_cli, dialect):
    emitter = start_emitter("--dialect", dialect, *FAST)
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), "--total-sample-count", str(SAMPLES), "--duration", "1",
                  "--min-query-count", str(SAMPLES), "--no-report", "--progress", "none")
    results = run.results
    client = results["client"]
    assert client["errors"] == 0 and client["requests"] == SAMPLES, run.stderr[-2000:]
    assert client["output_tokens"] == SAMPLES * TOKENS  # the server's count, however it came
    accounting = client["token_accounting"]
    assert accounting["requests"]["with_usage"] == SAMPLES
    with_ids = EXPECTED[dialect][3] != "none"  # streamed, or llama.cpp's logprobs
    assert accounting["requests"]["with_server_ids"] == (SAMPLES if with_ids else 0)
    assert accounting["requests"]["reference_tokenizer"] == (0 if with_ids else SAMPLES)
    if with_ids:
        assert accounting["disagreements"]["usage_vs_server_ids"]["disagreed"] == 0
    [endpoint] = results["endpoints"]
    name, token_prompt, refused, ids, usage = EXPECTED[dialect]
    assert endpoint["dialect"]["name"] == name and endpoint["dialect"]["found_by"] == "probe"
    capabilities = endpoint["capabilities"]
    assert capabilities["token_prompt"] is token_prompt
    assert capabilities["refused"] == refused
    assert (capabilities["ids"], capabilities["usage"]) == (ids, usage)
    # Each kind asked for its health where it keeps it, and answering there.
    assert endpoint["health"]["state"] == "answering", endpoint["health"]
    if dialect == "nim":  # its models are owned_by "system", as OpenAI's are: not OpenAI
        assert endpoint["dialect"]["warnings"] == []
        assert endpoint["dialect"]["health_path"] == "/v1/health/ready"
    notes = " | ".join(results["compliance_notes"])
    for words in NOTED[dialect]:
        assert words in notes
    # Every measured request was sent as the server takes it: none refused, each streamed.
    served = [entry for entry in emitter.log() if entry["response_id"]]
    assert len(served) >= SAMPLES + results["warmup"]["requests"]
    assert f"{emitter.url}: {name} (probe)" in run.stderr
    # Its metrics where its kind keeps them (TRT-LLM's at /prometheus/metrics), or none.
    server = endpoint["server"]
    if dialect in ("ollama", "openai"):
        assert not server["scraped"] and endpoint["dialect"]["metrics_path"] is None
    else:
        assert server["scraped"], server
        assert server["server_generation_tokens"] == client["output_tokens"]


def test_endpoints_describe_prints_what_each_server_takes(start_emitter):
    tgi = start_emitter("--dialect", "tgi")
    openai = start_emitter("--dialect", "openai")
    done = subprocess.run([sys.executable, "-m", "client_sut", "endpoints", "--endpoint",
                           tgi.url, "--endpoint", openai.url, "--describe"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.strip().splitlines()
    assert header.split()[:6] == ["endpoint", "kind", "version", "prompt", "ids", "usage"]
    assert rows[0].split()[:7] == [tgi.url, "tgi", "(probe)", "-", "text", "none", "inline"]
    assert rows[1].split()[:7] == [openai.url, "openai", "(probe)", "-", "token", "ids", "none"]
    assert "top_k, min_tokens, return_token_ids" in rows[1]


def test_a_named_dialect_is_taken_without_a_probe_request(start_emitter, demo_tokenizer,
                                                          run_cli):
    emitter = start_emitter("--dialect", "tgi", *FAST)
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), "--total-sample-count", str(SAMPLES), "--duration", "1",
                  "--min-query-count", str(SAMPLES), "--no-report", "--progress", "none",
                  "--dialect", "TGI", "--warmup", "0")
    results = run.results
    assert results["client"]["errors"] == 0, run.stderr[-2000:]
    assert results["endpoints"][0]["dialect"]["found_by"] == "--dialect"
    assert len(emitter.log()) == SAMPLES  # the measured requests only: nothing was probed


def test_servers_that_take_different_requests_are_not_mixed_in_one_run(start_emitter,
                                                                        demo_tokenizer, run_cli):
    tgi = start_emitter("--dialect", "tgi")
    sglang = start_emitter("--dialect", "sglang")
    run = run_cli("--endpoint", tgi.url, "--endpoint", sglang.url, "--tokenizer",
                  str(demo_tokenizer), "--dataset", str(SHARED_DATA))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].endswith(
        "benchmark each kind of server in a run of its own")
    assert not (run.output_dir / "results.json").exists()


def test_a_server_that_closes_each_connection_after_a_response_fails_no_request(
        start_emitter, demo_tokenizer, run_cli):
    # As llama.cpp's server does, though its headers say keep-alive: one request at a time, as
    # an accuracy run may be made, wrote every second request into a closed connection.
    emitter = start_emitter("--close-after-response", *FAST)
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), "--total-sample-count", "40", "--duration", "1",
                  "--min-query-count", "40", "--max-concurrency", "1", "--no-report",
                  "--progress", "none")
    results = run.results
    assert results["client"]["errors"] == 0, results["client"]["errors_by_kind"]
    [endpoint] = results["endpoints"]
    assert endpoint["connection_per_request"] is True
    assert endpoint["health"]["state"] == "answering"


def test_llama_cpps_ids_come_from_its_logprobs_and_its_context_from_props(start_emitter,
                                                                         demo_tokenizer,
                                                                         run_cli):
    emitter = start_emitter("--dialect", "llamacpp", *FAST)
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), "--total-sample-count", "8", "--duration", "1",
                  "--min-query-count", "8", "--no-report", "--progress", "none")
    # Its ids, and each chunk's running count of tokens (to recover the ids it leaves out).
    assert run.results["endpoints"][0]["capabilities"]["extra"] == {"n_probs": 1,
                                                                    "timings_per_token": True}
    served = {entry["response_id"]: entry["token_ids"] for entry in emitter.log()}
    for request in run.requests():  # the server's own ids, as it generated them
        assert request["token_id_source"] == "server"
        assert request["streamed_tokens"] == len(served[request["response_id"]]) == TOKENS
    # Its context is at /props (not in /v1/models): prompts that cannot fit are bad input.
    small = start_emitter("--dialect", "llamacpp", "--max-model-len", "300", *FAST)
    refused = run_cli("--endpoint", small.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                      str(SHARED_DATA), "--total-sample-count", "8")
    assert refused.returncode == 2
    assert "exceed the server's context per request (a slot's n_ctx at /props) 300" \
        in refused.stderr
    assert small.log() == []


@pytest.mark.timing
@pytest.mark.parametrize("dialect", ["trtllm", "tgi"])
def test_timing_holds_with_two_tokens_a_chunk_and_an_empty_chunk_before_the_first(
        start_emitter, demo_tokenizer, run_cli, dialect):
    """TRT-LLM sends a chunk with no text before its first token; both stream two tokens a
    chunk here (speculative decoding, a stream interval). TTFT is the first token's chunk, and
    TPOT spreads a chunk's tokens over the gaps, as the emitter wrote them."""
    emitter = start_emitter("--dialect", dialect, "--tokens-per-event", "2",
                            "--first-token-ms", "20", "--gap-ms", "4", "--output-tokens", "32")
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), "--scenario", "Server", "--target-qps", "20", "--duration",
                  "3", "--min-query-count", "60", "--no-report", "--progress", "none")
    client = run.results["client"]
    assert client["errors"] == 0 and client["output_tokens"] == 32 * client["requests"]
    writes = {e["response_id"]: e for e in emitter.log()}
    # Per request: the client's TPOT against the emitter's own writes of the same response.
    for request in run.requests():
        truth = writes[request["response_id"]] if dialect != "tgi" else None
        events = [t for t, n in zip(request["event_ns"], request["event_tokens"]) if n]
        assert len(events) == 16  # one token-bearing event per chunk of two
        if truth is not None:  # TGI's chunks carry no id: matched by count only
            true_tpot = (truth["write_ns"][-1] - truth["write_ns"][0]) / 31
            tpot = (events[-1] - events[0]) / 31
            assert abs(tpot - true_tpot) / 1e6 < 0.2
    true_ttft = sorted((e["write_ns"][0] - e["arrival_ns"]) / 1e6 for e in writes.values())
    assert abs(client["ttft_ms"]["p50"] - true_ttft[len(true_ttft) // 2]) < 5.0
    assert 20.0 <= client["ttft_ms"]["p50"]  # never at the empty chunk before the first token
