"""Faults never hang a run or lose a result.

For each fault the emitter can inject, in Server and in Offline: the run ends, every sample
LoadGen issued was completed, each error is classified and counted, the per-request records say
what happened, the exit status is 1, and LoadGen's logs and results.json are written.
"""

from __future__ import annotations

import pytest

from tests.conftest import SHARED_DATA

FAST_EMITTER = ("--first-token-ms", "5", "--gap-ms", "1", "--output-tokens", "8")
# Only the faults that stall are meant to time out; the others run under the default timeouts,
# so a CI machine that stalls the emitter for a moment cannot turn their errors into timeouts.
STALL_S = "3"
SHORT_TIMEOUTS = ("--first-byte-timeout", "1", "--gap-timeout", "1")
SCENARIOS = {
    "Server": ("--scenario", "Server", "--target-qps", "40", "--duration", "0.5",
               "--min-query-count", "24"),
    "Offline": ("--scenario", "Offline", "--duration", "0.1", "--min-query-count", "24"),
}
# fault -> the error kind the client must record for it
FAULT_KINDS = {
    "http500": "http_status",
    "http503": "http_status",
    "http429": "http_status",
    "reset": "disconnected",
    "bad_json": "malformed",
    "bad_sse": "malformed",
    "stall": "timeout",
    "no_done": "truncated",
    "late_first_byte": "timeout",
}


def assert_failed_but_whole(run, kind: str) -> list[dict]:
    assert run.returncode == 1, run.stdout + run.stderr
    results = run.results
    client = results["client"]
    assert client["issued"] == client["requests"] > 0  # every sample completed to LoadGen
    assert client["errors_by_kind"].get(kind, 0) >= 1, client["errors_by_kind"]
    assert client["errors"] == sum(client["errors_by_kind"].values())
    assert (run.output_dir / "mlperf_log_summary.txt").is_file()
    assert results["loadgen"]["result"] in ("VALID", "INVALID")
    # Said first, whatever LoadGen's verdict: in the notes, and above it in the printed summary.
    assert not results["compliant"]
    assert results["compliance_notes"][0].startswith(
        f"{client['errors']:,} of {client['requests']:,} requests failed: {kind} (")
    headline = next(line for line in run.stdout.splitlines() if "LoadGen" in line)
    assert headline.index("FAILED: ") < headline.index("LoadGen"), headline
    requests = run.requests()
    assert len(requests) == client["requests"]
    failed = [r for r in requests if r["error"] is not None]
    assert failed and all(r["error"]["message"] for r in failed)
    return failed


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("fault", sorted(FAULT_KINDS))
def test_fault_is_classified_and_the_run_completes(start_emitter, demo_tokenizer, run_cli,
                                                   fault, scenario):
    emitter = start_emitter(*FAST_EMITTER, "--fault", fault, "--fault-every", "3",
                            "--stall-s", STALL_S)
    timeouts = SHORT_TIMEOUTS if FAULT_KINDS[fault] == "timeout" else ()
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), "--total-sample-count", "24", *timeouts,
                  *SCENARIOS[scenario], timeout=120)
    failed = assert_failed_but_whole(run, FAULT_KINDS[fault])
    kinds = {r["error"]["kind"] for r in failed}
    assert kinds == {FAULT_KINDS[fault]}, kinds
    if fault == "http429":
        assert all(r["http_status"] == 429 for r in failed)
    if fault == "stall":
        assert all("--gap-timeout" in r["error"]["message"] for r in failed)
        assert all(sum(r["event_tokens"]) == 1 for r in failed)  # what arrived is kept
    if fault == "late_first_byte":
        assert all("--first-byte-timeout" in r["error"]["message"] for r in failed)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_server_killed_mid_run(start_emitter, demo_tokenizer, run_cli, scenario):
    emitter = start_emitter(*FAST_EMITTER, "--die-after", "6")
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), "--total-sample-count", "24", *SCENARIOS[scenario],
                  timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    client = run.results["client"]
    assert client["issued"] == client["requests"]
    # Streams open at the kill break; requests after it find nobody listening.
    assert set(client["errors_by_kind"]) <= {"disconnected", "refused"}
    assert client["errors_by_kind"].get("disconnected", 0) + \
        client["errors_by_kind"].get("refused", 0) >= client["requests"] - 5
    [endpoint] = run.results["endpoints"]
    assert endpoint["health"]["state"] == "stopped"
    assert "it did not come back" in run.stderr
