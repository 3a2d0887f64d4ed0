"""SIGINT or SIGTERM mid-run: stop issuing, complete what is outstanding, write what was
measured with `interrupted: true`, exit 130, within 5 s."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from client_sut.measure import sut
from client_sut.measure.dispatch import EndpointPool
from client_sut.measure.ejection import EjectionLog
from client_sut.measure.record_log import RecordLog
from client_sut.records import ErrorKind
from client_sut.request import Api, GenerationParams, Timeouts, request_body
from tests.conftest import SHARED_DATA, stop_run, wait_for_requests

# Slow streams (about 3 s each), so that many are in flight when the signal comes.
SLOW_EMITTER = ("--first-token-ms", "200", "--gap-ms", "50", "--output-tokens", "64")
SCENARIOS = {
    "Server": ("--scenario", "Server", "--target-qps", "10", "--duration", "120"),
    "Offline": ("--scenario", "Offline", "--duration", "1", "--min-query-count", "400",
                "--max-concurrency", "16"),
}
EXIT_DEADLINE_S = 5.0


# The 5 s deadline is wall time, which another worker's vLLM can stretch past it (the stop
# took 5-8 s beside it): these run with the timing tests, alone. Both signals take one handler.
@pytest.mark.timing
@pytest.mark.parametrize("scenario, sig", [
    pytest.param("Offline", signal.SIGINT, id="Offline-SIGINT"),
    pytest.param("Server", signal.SIGTERM, id="Server-SIGTERM")])
def test_interrupt_writes_what_was_measured_and_exits_130(start_emitter, start_run,
                                                          demo_tokenizer, tmp_path, scenario,
                                                          sig):
    emitter = start_emitter(*SLOW_EMITTER)
    output_dir = tmp_path / "run"
    process = start_run("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer),
                        "--dataset", str(SHARED_DATA), "--total-sample-count", "50",
                        "--output-dir", str(output_dir), *SCENARIOS[scenario])
    wait_for_requests(emitter, 12)
    sent_at = time.monotonic()
    stdout, stderr = stop_run(process, sig)
    took = time.monotonic() - sent_at
    assert process.returncode == 130, stdout + stderr
    assert took < EXIT_DEADLINE_S, f"took {took:.1f} s to stop"
    results = json.loads((output_dir / "results.json").read_text())
    assert results["interrupted"] is True and results["compliant"] is False
    client = results["client"]
    assert client["issued"] == client["requests"] >= 12  # every issued sample was completed
    assert client["errors_by_kind"].get("cancelled", 0) >= 1
    lines = (output_dir / "requests.jsonl").read_text().splitlines()
    assert len(lines) == client["requests"]
    assert (output_dir / "mlperf_log_detail.txt").is_file()
    if scenario == "Offline":  # every sample completed: LoadGen finishes and writes its summary
        assert (output_dir / "mlperf_log_summary.txt").is_file()
    assert "INTERRUPTED" in stdout


def test_interrupt_after_loadgen_ended_still_writes_the_run(start_emitter, start_run,
                                                            demo_tokenizer, tmp_path):
    """An interrupt while accuracy is scored (LoadGen has ended, the event loop is closed) stops
    the scoring, and the run is still written, marked interrupted, exit 130."""
    emitter = start_emitter("--first-token-ms", "1", "--gap-ms", "0.1", "--output-tokens", "32")
    output_dir = tmp_path / "run"
    process = start_run("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer),
                        "--dataset", str(SHARED_DATA), "--mode", "accuracy", "--no-report",
                        "--output-dir", str(output_dir))
    for line in process.stderr:
        if "scoring accuracy" in line:
            break
    stdout, stderr = stop_run(process, signal.SIGINT, timeout_s=120)
    assert process.returncode == 130, stdout + stderr
    results = json.loads((output_dir / "results.json").read_text())
    assert results["interrupted"] is True and "accuracy" not in results
    assert results["client"]["requests"] == 200
    assert len((output_dir / "requests.jsonl").read_text().splitlines()) == 200


def test_a_request_written_before_its_task_ran_is_stopped_and_completed_once(start_emitter,
                                                                              monkeypatch,
                                                                              tmp_path):
    """A request is written in the callback that receives LoadGen's issue, and the interrupt
    can come before that request's task first runs. The request must still be stopped, and its
    sample given exactly one first token and one completion (LoadGen's calls are recorded)."""
    emitter = start_emitter("--first-token-ms", "0", "--gap-ms", "50", "--output-tokens", "64")
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(sut.lg, "FirstTokenComplete",
                        lambda responses: calls.extend(("first", r.id) for r in responses))
    monkeypatch.setattr(sut.lg, "QuerySamplesComplete",
                        lambda responses: calls.extend(("complete", r.id) for r in responses))
    body = request_body(Api.COMPLETIONS, "emitter", GenerationParams(max_tokens=64),
                        prompt_ids=(1, 2, 3), prompt_text="")

    async def interrupted_right_after_a_write() -> tuple[sut.ClientSut, list[dict]]:
        async with EndpointPool([emitter.url], 8, Timeouts()) as pool:
            bridge = sut.ClientSut(asyncio.get_running_loop(), pool, Api.COMPLETIONS, [body],
                                   sut.LoadGenBridge(report_first_token=True,
                                                     retokenize=lambda text: [1],
                                                     redact=lambda text: text,
                                                     log=RecordLog(tmp_path)),
                                   EjectionLog(print))
            bridge._submit([(1, 0)], time.perf_counter_ns())
            await pool.wait_idle()  # query 1 done: its connection is idle and kept alive
            bridge._submit([(2, 0)], time.perf_counter_ns())  # written on it at once
            await bridge.stop()  # in the same loop turn, before query 2's task ran
            # A round trip to the emitter while the loop runs: a stream left going would
            # deliver its first event (due at once) meanwhile, and report it a second time.
            log = await asyncio.to_thread(emitter.log)
            return bridge, log

    bridge, log = asyncio.run(interrupted_right_after_a_write())
    assert calls == [("first", 1), ("complete", 1), ("first", 2), ("complete", 2)]
    records = bridge.bridge.log.finish(tmp_path / "requests.jsonl")
    assert records[1].error.kind is ErrorKind.CANCELLED
    assert len(log) == 2 and len(log[1]["write_ns"]) < 64  # stopped mid-stream


def test_a_run_killed_outright_leaves_the_requests_it_had_completed(start_emitter, start_run,
                                                                    demo_tokenizer, tmp_path):
    """SIGKILL leaves no time to write anything: the records written as each request completed
    are what remains (all but the last second's)."""
    emitter = start_emitter("--first-token-ms", "5", "--gap-ms", "1", "--output-tokens", "8")
    output_dir = tmp_path / "run"
    run = start_run("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                    str(SHARED_DATA), "--scenario", "Server", "--target-qps", "50",
                    "--duration", "120", "--output-dir", str(output_dir))
    partial = output_dir / "requests.partial.jsonl"
    deadline = time.monotonic() + 60
    while not (partial.is_file() and len(partial.read_bytes().splitlines()) >= 40):
        assert time.monotonic() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.1)
    run.kill()
    run.wait(10)
    lines = [json.loads(line) for line in partial.read_text().splitlines()]
    assert len(lines) >= 40 and all(line["error"] is None for line in lines)
    sent = {entry["response_id"] for entry in emitter.log()}
    assert {line["response_id"] for line in lines} <= sent
    assert not (output_dir / "results.json").exists()
