"""Several servers found without a URL list: three emitters on loopback, one slowed, listed in
an endpoints file as `server.launch --endpoints-file` writes it."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.conftest import SHARED_DATA

# Which replica is slow is told from their TTFTs 130 ms apart: load from other tests made a fast
# one differ too. make test runs the timing tests alone.
pytestmark = pytest.mark.timing

FAST_MS, SLOW_MS = 20.0, 150.0


def test_replicas_from_an_endpoints_file_get_their_own_figures_and_the_slow_one_is_flagged(
        start_emitter, demo_tokenizer, run_cli, tmp_path):
    emitters = [start_emitter("--first-token-ms", str(ms), "--gap-ms", "2", "--output-tokens", "16")
                for ms in (FAST_MS, FAST_MS, SLOW_MS)]
    listing = tmp_path / "endpoints"
    listing.write_text("".join(f"{e.url}\n" for e in emitters))
    run = run_cli("--endpoints-file", str(listing), "--tokenizer", str(demo_tokenizer),
                  "--dataset", str(SHARED_DATA), "--total-sample-count", "50",
                  "--scenario", "Server", "--target-qps", "60", "--duration", "3",
                  "--min-query-count", "240")
    assert run.returncode in (0, 1), run.stderr
    results = run.results
    endpoints = {e["url"]: e for e in results["endpoints"]}
    assert list(endpoints) == [e.url for e in emitters]
    for endpoint in endpoints.values():
        assert endpoint["found_by"] == f"file:{listing}" and endpoint["reached"] == "replica"
        assert endpoint["requests"] >= 30 and endpoint["errors"] == 0
        assert endpoint["ttft_ms"]["p50"] and endpoint["tpot_ms"]["p99"]
        assert endpoint["output_tokens_per_second"] > 0
    slow = emitters[2].url
    assert endpoints[slow]["ttft_ms"]["p50"] >= SLOW_MS
    flagged = [row["url"] for row in results["replica_balance"]["ttft_ms"] if row["differs"]]
    assert flagged == [slow]
    assert any(slow in warning for warning in results["warnings"])
    assert f"WARNING: replica {slow}" in run.stdout


# Nine front ends of different capacities: one to nine sequences at once, each request 200 ms
# (60 ms to the first token, then 7 more 20 ms apart), so endpoint i serves i x 5 requests/s.
FRONT_ENDS = range(1, 10)
FRONT_END_ARGS = ("--first-token-ms", "60", "--gap-ms", "20", "--output-tokens", "8")
CAP = 16


def test_nine_front_ends_each_draw_load_in_proportion_to_what_it_serves(
        start_emitter, demo_tokenizer, run_cli):
    emitters = [start_emitter(*FRONT_END_ARGS, "--max-running", str(k)) for k in FRONT_ENDS]
    # Everything in flight, at most CAP per endpoint: each is kept full (its queue past its
    # capacity waits in the emitter) and is sent a new request each time it finishes one.
    run = run_cli(*(arg for e in emitters for arg in ("--endpoint", e.url)), "--tokenizer",
                  str(demo_tokenizer), "--dataset", str(SHARED_DATA), "--scenario", "Offline",
                  "--duration", "0.1", "--min-query-count", "1500", "--max-concurrency",
                  str(CAP), "--total-sample-count", "50", timeout=180)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    endpoints = run.results["endpoints"]
    assert [e["url"] for e in endpoints] == [e.url for e in emitters]
    assert all(e["errors"] == 0 and e["ttft_ms"]["p99"] for e in endpoints)
    # The load each drew: what it was sent after its first CAP (every endpoint was given CAP
    # at once at the start), while every one was full (until the last send).
    sends = defaultdict(list)
    for request in run.requests():
        sends[request["endpoint"]].append(request["send_ns"])
    drawn = {url: len(times) - CAP for url, times in sends.items()}
    total = sum(drawn.values())
    for k, emitter in zip(FRONT_ENDS, emitters):
        share, expected = drawn[emitter.url] / total, k / sum(FRONT_ENDS)
        assert abs(share / expected - 1) <= 0.10, (k, drawn, expected * total)
    assert len([line for line in run.stdout.splitlines() if "http://127.0.0.1" in line]) >= 9
