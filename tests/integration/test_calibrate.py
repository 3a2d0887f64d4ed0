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
    assert capacity["tokens"]["client_cpu_us_per_token"] > 0
    # Every timed request was matched to the emitter's record, event by event.
    assert timing["requests_matched"] == timing["self_check"]["streamed_tokens"] // 32 > 0
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
