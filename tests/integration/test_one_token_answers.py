"""One-token answers (an EOS drawn first by a server that ignores min_tokens 1): reported to
LoadGen with their true count, and said plainly. LoadGen refuses a TPOT for one token: it logs
an error for each and counts it as 0 tokens, as it would for MLPerf's reference SUTs, which
report the same count. The emitter answers every request with exactly one token here."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SHARED_DATA

SAMPLES = 16
LOADGEN_ERROR = "Number of tokens need to be greater than 1"


@pytest.mark.parametrize("scenario,mode", [("Offline", "performance"), ("Server", "performance"),
                                           ("Offline", "accuracy"), ("Server", "accuracy")])
def test_a_one_token_answer_is_reported_as_one_token_and_said(start_emitter, demo_tokenizer,
                                                               run_cli, scenario, mode):
    emitter = start_emitter("--first-token-ms", "5", "--gap-ms", "1", "--output-tokens", "1")
    rate = ("--target-qps", "50") if scenario == "Server" else ()
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), "--total-sample-count", str(SAMPLES), "--scenario", scenario,
                  "--mode", mode, "--duration", "1", "--min-query-count", str(SAMPLES),
                  *rate)
    results = run.results
    client = results["client"]
    assert client["errors"] == 0, run.stderr[-2000:]
    single = client["one_token_answers"]
    assert single["count"] == client["requests"] >= SAMPLES
    assert single["reported_tokens"] == 1
    # The client's TPOT needs two tokens: none, rather than a made-up one.
    assert client["tpot_ms"]["p50"] is None
    # Never a padded count: the requests and (in accuracy mode) the log say one token each.
    assert all(r["output_tokens"] == 1 for r in run.requests())
    # LoadGen logged its error for them, and the run says why, first, in its notes.
    assert any(LOADGEN_ERROR in error for error in results["loadgen"]["errors"])
    [note] = [n for n in results["compliance_notes"] if "single token" in n]
    assert "true count" in note and results["compliant"] is False
    assert ("rejects an accuracy log" in note) == (mode == "accuracy")
    assert "single token" in run.stdout
    if mode == "accuracy":
        rows = json.loads((run.output_dir / "mlperf_log_accuracy.json").read_text())
        assert rows and all(row["token_count"] == 1 and len(row["data"]) == 8 for row in rows)
        assert results["accuracy"]["outputs"]["tokens"]["one_token"] == SAMPLES
