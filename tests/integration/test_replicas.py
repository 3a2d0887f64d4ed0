"""Several servers found without a URL list: three emitters on loopback, one slowed, listed in
an endpoints file as `server.launch --endpoints-file` writes it."""

from __future__ import annotations

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
