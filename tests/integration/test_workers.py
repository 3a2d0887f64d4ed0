"""`run --workers N`: the streams in worker processes, LoadGen in the run's own process.

Real runs against the emitter: every sample is completed exactly once with what was streamed,
the figures come from every process, and neither a worker's death nor an interrupt leaves
LoadGen waiting.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, stop_run, wait_for_requests

STREAMS = ("--first-token-ms", "20", "--gap-ms", "2", "--output-tokens", "32")
# About 3 s a stream: many are in flight when something happens to the run.
SLOW_STREAMS = ("--first-token-ms", "200", "--gap-ms", "50", "--output-tokens", "64")


# Its VALID rests on the emitter's capacity at 100 QPS: beside the real-model vLLM module it went
# INVALID once in CI (exit 1), so it runs with the timing tests, alone.
@pytest.mark.timing
def test_server_run_over_two_workers_is_valid_and_counts_every_process(start_emitter,
                                                                      demo_tokenizer, run_cli):
    emitter = start_emitter(*STREAMS)
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), "--total-sample-count", "100", "--scenario", "Server",
                  "--target-qps", "100", "--duration", "5", "--min-query-count", "600",
                  "--workers", "2", "--max-concurrency", "64")
    assert run.returncode == 0, run.stderr
    results = run.results
    assert results["loadgen"]["result"] == "VALID"
    client, check = results["client"], results["self_check"]
    assert client["errors"] == 0 and client["requests"] == client["issued"] >= 600
    requests = run.requests()
    # LoadGen was told each first token, after it arrived in a worker.
    assert all(r["first_reported_ns"] >= r["event_ns"][0] for r in requests)
    assert check["core_plan"]["worker_processes"] == 2
    workers = check["workers"]
    assert [w["worker"] for w in workers] == [0, 1]
    assert all(w["streamed_tokens"] > 0 for w in workers)  # both took a share
    assert sum(w["streamed_tokens"] for w in workers) == check["streamed_tokens"]
    # Every figure is rounded to the millisecond: the sum of two may differ from theirs by one.
    assert abs(check["event_loop_cpu_s"] - sum(w["event_loop_cpu_s"] for w in workers)) <= 0.002
    assert check["loadgen_process_loop_lag_ms"]["p50"] is not None
    # Each worker warmed its own connections up.
    assert results["warmup"]["requests"] == 2 * results["warmup"]["requests_per_endpoint"]


def _run_args(emitter, tokenizer, output_dir: Path) -> tuple[str, ...]:
    return ("--endpoint", emitter.url, "--tokenizer", str(tokenizer), "--dataset",
            str(SHARED_DATA), "--total-sample-count", "50", "--output-dir", str(output_dir),
            "--no-report", "--workers", "2")


def _worker_pids(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"measure.worker" in cmdline:
            pids.append(int(entry.name))
    return sorted(pids)


def test_a_worker_that_dies_fails_what_it_held_and_the_others_finish_the_run(
        start_emitter, start_run, demo_tokenizer, tmp_path):
    emitter = start_emitter("--first-token-ms", "200", "--gap-ms", "50", "--output-tokens", "24")
    output_dir = tmp_path / "run"
    process = start_run(*_run_args(emitter, demo_tokenizer, output_dir), "--scenario", "Offline",
                        "--duration", "1", "--min-query-count", "48", "--max-concurrency", "16")
    wait_for_requests(emitter, 20)  # warm-ups, then both workers' first streams
    workers = _worker_pids(process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=120)
    results = json.loads((output_dir / "results.json").read_text())
    client = results["client"]
    assert client["issued"] == client["requests"] >= 48, stderr  # none left to LoadGen
    assert client["errors_by_kind"].get("client", 0) >= 1
    assert client["requests"] - client["errors"] >= 24  # the other worker took the rest
    lines = [json.loads(line) for line in (output_dir / "requests.jsonl").open()]
    failed = [r for r in lines if r["error"] and r["error"]["kind"] == "client"]
    assert all("client worker process" in r["error"]["message"] for r in failed)
    assert len(results["self_check"]["workers"]) == 1  # only the survivor reported figures
    assert (output_dir / "mlperf_log_summary.txt").is_file()  # LoadGen finished


def test_an_interrupt_completes_every_sample_the_workers_hold(start_emitter, start_run,
                                                              demo_tokenizer, tmp_path):
    emitter = start_emitter(*SLOW_STREAMS)
    output_dir = tmp_path / "run"
    process = start_run(*_run_args(emitter, demo_tokenizer, output_dir), "--scenario", "Server",
                        "--target-qps", "10", "--duration", "120")
    wait_for_requests(emitter, 20)
    stdout, stderr = stop_run(process, signal.SIGINT)
    assert process.returncode == 130, stdout + stderr
    results = json.loads((output_dir / "results.json").read_text())
    assert results["interrupted"] is True
    client = results["client"]
    assert client["issued"] == client["requests"] >= 12
    assert client["errors_by_kind"].get("cancelled", 0) >= 1
    assert "client" not in client["errors_by_kind"]  # the workers stopped, they did not die
    assert len(results["self_check"]["workers"]) == 2
