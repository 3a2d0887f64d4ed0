"""Thousands of streams on a stock host: the open-file limit is raised, or the run refused.

A common default is a soft limit of 1,024 open files under a higher hard one; 4,000 streams need
about 8,000 (each connection's socket, and its duplicate until the first token is stamped). The
run raises its soft limit to the hard one and serves every stream; where the hard limit itself
is too low it stops before sending anything, saying how to raise it.
"""

from __future__ import annotations

import resource

import pytest

from tests.conftest import SHARED_DATA

STREAMS = 4_000
# Each stream open about 3 s: every one of the 4,000 is opened before the first one ends.
SLOW_EMITTER = ("--first-token-ms", "2500", "--gap-ms", "50", "--output-tokens", "8")
OFFLINE = ("--scenario", "Offline", "--duration", "0.1", "--min-query-count", str(STREAMS),
           "--max-concurrency", str(STREAMS), "--warmup", "0")


def peak_concurrency(requests: list[dict]) -> int:
    edges = sorted([(r["send_ns"], 1) for r in requests] + [(r["end_ns"], -1) for r in requests])
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak


def test_a_hard_limit_too_low_is_refused_before_anything_is_sent(start_emitter, demo_tokenizer,
                                                                  run_cli):
    emitter = start_emitter(*SLOW_EMITTER)
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), *OFFLINE, open_files=(1024, 1024))
    assert run.returncode == 2, run.stdout + run.stderr
    [line] = [line for line in run.stderr.splitlines() if "error:" in line]
    assert "the open-file limit is 1,024" in line and "ulimit -Hn 8192" in line, line
    assert "lower --max-concurrency to 463" in line, line
    assert emitter.log() == []  # nothing was sent, not even the probe
    assert not (run.output_dir / "results.json").exists()


@pytest.mark.timing  # 4,000 streams take both cores for a while: not beside other tests
def test_four_thousand_streams_under_a_soft_limit_of_1024(start_emitter, demo_tokenizer,
                                                          run_cli):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 9_000:
        pytest.fail(f"this host's hard open-file limit ({hard}) cannot hold the test's streams")
    emitter = start_emitter(*SLOW_EMITTER)
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), *OFFLINE, open_files=(1024, hard), timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = run.results
    client = results["client"]
    assert client["requests"] == client["issued"] == STREAMS
    assert client["errors"] == 0, client["errors_by_kind"]
    assert peak_concurrency(run.requests()) == STREAMS
    files = client["resources"]["open_files"]
    assert files["soft_limit_at_start"] == 1024
    assert files["soft_limit"] == files["hard_limit"] == hard
    assert files["needed"] > STREAMS and files["streams"] == STREAMS
