"""The emitter's own record of what it wrote, and `client-sut calibrate` end to end."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

from tests.conftest import REPO

FIRST_TOKEN_MS, GAP_MS, TOKENS = 30.0, 5.0, 4
MS = 1_000_000


def stream_once(url: str, body: dict) -> list[dict]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("POST", "/v1/completions", json.dumps(body),
                       {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    events = [line[6:] for line in response.read().decode().split("\n\n") if line]
    connection.close()
    assert events[-1] == "[DONE]"
    return [json.loads(event) for event in events[:-1]]


def test_emitter_records_each_write_never_before_its_time(start_emitter):
    emitter = start_emitter("--first-token-ms", str(FIRST_TOKEN_MS), "--gap-ms", str(GAP_MS),
                            "--output-tokens", str(TOKENS))
    chunks = stream_once(emitter.url, {"model": "emitter", "prompt": [1, 2, 3], "stream": True})
    token_chunks = [c for c in chunks if c["choices"]]
    (entry,) = emitter.log()
    assert entry["response_id"] == chunks[0]["id"] and len({c["id"] for c in chunks}) == 1
    assert entry["token_ids"] == [i for c in token_chunks for i in c["choices"][0]["token_ids"]]
    assert chunks[-1]["usage"]["completion_tokens"] == TOKENS
    writes = entry["write_ns"]
    assert len(writes) == TOKENS == len(token_chunks)
    # Its schedule is a floor: an event may go out late (that is what the record is for), never
    # early.
    assert all(write - entry["arrival_ns"] >= (FIRST_TOKEN_MS + n * GAP_MS) * MS
               for n, write in enumerate(writes))
    assert writes == sorted(writes)


def stream_two_at_once(url: str) -> None:
    parts = urlsplit(url)
    connections = [http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                   for _ in range(2)]
    for n, connection in enumerate(connections):  # both sent before either is read
        connection.request("POST", "/v1/completions",
                           json.dumps({"model": "emitter", "prompt": [n], "stream": True}),
                           {"Content-Type": "application/json"})
    for connection in connections:
        assert connection.getresponse().read().endswith(b"data: [DONE]\n\n")
        connection.close()


def write_order(log: list[dict]) -> list[str]:
    """Response ids in the order the emitter wrote their events."""
    writes = sorted((write, entry["response_id"]) for entry in log for write in entry["write_ns"])
    return [response_id for _, response_id in writes]


def test_engine_steps_write_each_streams_next_event_on_its_own_round_robin(start_emitter):
    step_ms, tokens = 6.0, 6
    emitter = start_emitter("--engine-step-ms", str(step_ms), "--first-token-ms", "0",
                            "--output-tokens", str(tokens))
    stream_two_at_once(emitter.url)
    log = emitter.log()
    assert [len(entry["write_ns"]) for entry in log] == [tokens, tokens]
    for entry in log:
        # One write per event (a write's events would share its stamp), a step apart: steps
        # never start early, but a write may wait behind the others of its step.
        writes = entry["write_ns"]
        assert all(b - a >= step_ms / 2 * MS for a, b in zip(writes, writes[1:]))
    # While both streams run, every step writes each once, in the order they joined.
    order = write_order(log)
    first, second = order[0], next(r for r in order if r != order[0])
    both = order[order.index(second):len(order) - order[::-1].index(first)]
    assert len(both) >= tokens and all(a != b for a, b in zip(both, both[1:]))


def test_engine_steps_only_the_streams_in_its_batch(start_emitter):
    emitter = start_emitter("--engine-step-ms", "0", "--max-running", "1", "--first-token-ms",
                            "0", "--output-tokens", "5")
    stream_two_at_once(emitter.url)
    order = write_order(emitter.log())
    # With one slot the second stream waits, in its first-token delay, for the first to end.
    assert order == [order[0]] * 5 + [order[-1]] * 5 and order[0] != order[-1]


def test_calibrate_quick_writes_its_figures(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    completed = subprocess.run([sys.executable, "-m", "client_sut", "calibrate", "--quick",
                                "--output-dir", str(tmp_path)], capture_output=True, text=True,
                               timeout=600, cwd=REPO, env=env)
    assert completed.returncode == 0, completed.stderr
    report = json.loads((tmp_path / "calibrate.json").read_text())
    capacity, timing = report["capacity"], report["timing"]
    assert capacity["max_tokens_per_second"] > 0 and capacity["max_requests_per_second"] > 0
    assert capacity["tokens"]["errors"] == capacity["requests"]["errors"] == 0
    assert capacity["tokens_whole_response_per_read"]["errors"] == 0
    assert capacity["tokens"]["client_cpu_us_per_token"] > 0
    # Every timed request was matched to the emitter's record, event by event.
    for timed in (timing, report["timing_engine_steps"]):
        assert timed["requests_matched"] == timed["self_check"]["streamed_tokens"] // 32 > 0
    for key in ("ttft_error_ms", "tpot_abs_error_ms", "itl_abs_error_ms",
                "first_token_to_loadgen_ms"):
        assert timing[key]["p50"] is not None
    # A stamp can only follow the write it stamps (same clock on both sides).
    assert timing["ttft_error_ms"]["p50"] >= 0 and timing["first_token_to_loadgen_ms"]["p50"] >= 0
    assert "streamed tokens/s" in completed.stdout and "TTFT" in completed.stdout
    # The calibration feeds the capacity warning of later runs.
    from client_sut.measure.selfcheck import load_calibration
    assert load_calibration(tmp_path / "calibrate.json").max_tokens_per_second == \
        capacity["max_tokens_per_second"]
