"""A server that dies during a command that makes many runs (`sla`, `submission`) is named as
such, never read as a deployment that fails its SLA: real emitters on 127.0.0.1, killed with
SIGKILL (or exiting at a given request, as a crashed server does)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from client_sut.errors import EXIT_SERVER_LOST
from client_sut.servers.emitter import EmitterProcess
from tests.conftest import REPO, SHARED_DATA, wait_for_requests
from tests.integration.test_sla import ENV, K, LIMITS, SERVER_LIKE, deployment, sla
from tests.integration.test_submission import CHECKER, SYSTEM_FILE

# The searches' verdicts rest on the emitter's known capacity: run with the cores to
# themselves (make test runs the timing tests after the parallel ones).
pytestmark = pytest.mark.timing

PROBE = ("--probe-duration", "3", "--confirm-duration", "6")
PROBE_QUERIES = 505  # each short probe's queries (LoadGen's early stopping needs 459)
WARMUP = 4  # the default warm-up requests per endpoint


def start_sla(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "client_sut", "sla", *args], cwd=REPO,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill(emitter: EmitterProcess) -> None:
    emitter.process.send_signal(signal.SIGKILL)
    emitter.process.wait(10)


def port(emitter: EmitterProcess) -> str:
    return emitter.url.rsplit(":", 1)[1]


def read_sla(output_dir: Path) -> dict:
    return json.loads((output_dir / "sla.json").read_text())


def assert_nothing_unmeasured_called_failing(result: dict) -> None:
    measured_fails = {p["target_qps"] for p in result["probes"] + result["confirmation_attempts"]
                      if p["verdict"] == "fail"}
    assert result["lowest_failing_qps"] is None or result["lowest_failing_qps"] in measured_fails


def test_sla_stops_at_once_when_the_server_is_killed_mid_probe(start_emitter, demo_tokenizer,
                                                                tmp_path):
    emitter = start_emitter(*SERVER_LIKE)
    output_dir = tmp_path / "sla"
    process = start_sla(*deployment(emitter, demo_tokenizer), *LIMITS, *PROBE,
                        "--start-qps", "50", "--output-dir", str(output_dir))
    try:
        wait_for_requests(emitter, WARMUP + 100)  # the first probe is under way
        kill(emitter)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == EXIT_SERVER_LOST, stderr
    result = read_sla(output_dir)
    [probe] = result["probes"]  # no probe after it, at any rate
    assert probe["verdict"] == "aborted" and probe["server_lost"] is True
    assert probe["reason"].startswith(f"the server at {emitter.url} stopped answering during "
                                      f"probe-01")
    assert result["aborted"] == {"during": "probe-01", "reason": probe["reason"]}
    assert result["answer_qps"] is None and result["lowest_failing_qps"] is None
    assert result["binding_constraint"] is None
    assert stdout.strip().splitlines()[0].startswith(
        f"the server at {emitter.url} stopped answering during probe-01")
    assert "no answer" in stdout
    # What was measured is kept: the probe's run, with the server's end in its health.
    run = json.loads((output_dir / probe["dir"] / "results.json").read_text())
    [endpoint] = run["endpoints"]
    assert endpoint["health"]["state"] == "stopped"
    assert endpoint["health"]["came_back_s"] is None
    assert run["client"]["requests"] == run["client"]["issued"] > 100


def test_sla_stops_before_the_next_probe_when_the_server_dies_between_probes(
        start_emitter, demo_tokenizer, tmp_path):
    emitter = start_emitter(*SERVER_LIKE)
    output_dir = tmp_path / "sla"
    process = start_sla(*deployment(emitter, demo_tokenizer), *LIMITS, *PROBE,
                        "--start-qps", "50", "--output-dir", str(output_dir))
    try:
        for line in process.stderr:  # the search says each verdict as it is reached
            if line.startswith("[sla] probe-01: PASS"):
                kill(emitter)
                break
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == EXIT_SERVER_LOST, stderr
    result = read_sla(output_dir)
    assert result["probes"][0]["verdict"] == "pass"
    assert all(p["verdict"] == "aborted" for p in result["probes"][1:])
    # Killed before probe-02 began or as its run started: either way, named for what it is.
    assert result["aborted"]["during"] == "probe-02"
    assert emitter.url in result["aborted"]["reason"]
    assert result["lowest_failing_qps"] is None and not result["confirmed"]
    assert_nothing_unmeasured_called_failing(result)
    assert "probe-02" in stdout and emitter.url in stdout


def test_sla_waits_for_a_restarted_server_repeats_the_probe_and_confirms(demo_tokenizer,
                                                                          tmp_path):
    emitter = EmitterProcess(*SERVER_LIKE)
    output_dir = tmp_path / "sla"
    # Past the capacity (168 QPS) at twice the start: a pass, a fail, then the confirmation.
    process = start_sla(*deployment(emitter, demo_tokenizer), *LIMITS, *PROBE,
                        "--start-qps", "100", "--tolerance", "0.99", "--wait-for-server", "120",
                        "--output-dir", str(output_dir))
    restarted = None
    try:
        wait_for_requests(emitter, WARMUP + 100)
        kill(emitter)
        restarted = EmitterProcess(*SERVER_LIKE, "--port", port(emitter))  # a pod's restart
        stdout, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
        emitter.stop()
        if restarted is not None:
            restarted.stop()
    assert process.returncode == 0, stderr
    result = read_sla(output_dir)
    assert result["confirmed"] is True and result["aborted"] is None
    aborted, repeat = result["probes"][:2]
    assert aborted["verdict"] == "aborted" and "during probe-01" in aborted["reason"]
    assert repeat["dir"].startswith("probe-01-repeat1") and repeat["verdict"] == "pass"
    assert repeat["target_qps"] == aborted["target_qps"]
    assert result["answer_qps"] >= 100 and result["lowest_failing_qps"] > result["answer_qps"]
    assert_nothing_unmeasured_called_failing(result)
    assert "confirmed VALID" in stdout
    run = json.loads((output_dir / aborted["dir"] / "results.json").read_text())
    assert run["endpoints"][0]["health"]["state"] in ("stopped", "restarted")


def test_two_servers_one_dies_each_named_per_endpoint_and_the_search_stops(start_emitter,
                                                                           demo_tokenizer,
                                                                           tmp_path):
    alive = start_emitter(*SERVER_LIKE)
    dying = start_emitter(*SERVER_LIKE, "--die-after", "60")  # mid-probe: a crashed replica
    output_dir = tmp_path / "sla"
    done = sla("--endpoint", alive.url, "--endpoint", dying.url, "--tokenizer",
               str(demo_tokenizer), "--dataset", str(SHARED_DATA), *LIMITS, *PROBE,
               "--start-qps", str(K * 4), "--output-dir", str(output_dir))
    assert done.returncode == EXIT_SERVER_LOST, done.stderr
    result = read_sla(output_dir)
    [probe] = result["probes"]
    assert probe["reason"].startswith(f"the deployment lost a replica: the server at "
                                      f"{dying.url} stopped answering during probe-01")
    assert probe["reason"].endswith("while 1 other kept answering")
    run = json.loads((output_dir / probe["dir"] / "results.json").read_text())
    by_url = {e["url"]: e for e in run["endpoints"]}
    assert by_url[dying.url]["health"]["state"] == "stopped"
    assert by_url[alive.url]["health"]["state"] == "answering"
    # Nothing is lost: every request is in one endpoint's figures, the failed ones counted
    # under the server that failed them (the rest were cancelled when the probe stopped early).
    assert sum(e["requests"] for e in run["endpoints"]) == run["client"]["requests"] == \
        run["client"]["issued"]
    lines = [json.loads(line) for line in
             (output_dir / probe["dir"] / "requests.jsonl").read_text().splitlines()]
    failed = [r for r in lines if r["error"] and r["error"]["kind"] != "cancelled"]
    assert {r["endpoint"] for r in failed} == {dying.url}
    assert {r["error"]["kind"] for r in failed} <= {"refused", "disconnected", "truncated"}
    assert len(failed) == probe["errors"] > 0
    assert any(r["endpoint"] == alive.url and r["error"] is None for r in lines)


def test_submission_stops_before_the_next_run_when_a_server_dies(start_emitter, demo_tokenizer,
                                                                 tmp_path):
    emitter = start_emitter("--first-token-ms", "5", "--gap-ms", "1", "--output-tokens", "8",
                            "--die-after", "30")
    (tmp_path / "system.toml").write_text(SYSTEM_FILE)
    output_dir = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "client_sut", "submission", "--system-file",
         str(tmp_path / "system.toml"), "--checker", str(CHECKER), "--division", "open",
         "--scenario", "Offline", "--output-dir", str(output_dir), "--",
         "--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
         str(SHARED_DATA), "--total-sample-count", "50", "--duration", "1",
         "--min-query-count", "50", "--no-report"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=ENV)
    assert done.returncode == EXIT_SERVER_LOST, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"client-sut submission: stopped: the server at {emitter.url} "
                           f"stopped answering during run 1/3 (Offline performance)")
    runs = output_dir / "runs" / "Offline"
    made = json.loads((runs / "performance" / "results.json").read_text())
    assert made["endpoints"][0]["health"]["state"] == "stopped"
    assert (runs / "performance" / "mlperf_log_detail.txt").is_file()
    assert not (runs / "accuracy").exists()  # no run started against the dead server
    assert not (output_dir / "submission").exists()
