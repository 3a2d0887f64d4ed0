"""SIGINT or SIGTERM mid-run: stop issuing, complete what is outstanding, write what was
measured with `interrupted: true`, exit 130, within 5 s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, SHARED_DATA

# Slow streams (about 3 s each), so that many are in flight when the signal comes.
SLOW_EMITTER = ("--first-token-ms", "200", "--gap-ms", "50", "--output-tokens", "64")
SCENARIOS = {
    "Server": ("--scenario", "Server", "--target-qps", "10", "--duration", "120"),
    "Offline": ("--scenario", "Offline", "--duration", "1", "--min-query-count", "400",
                "--max-concurrency", "16"),
}
EXIT_DEADLINE_S = 5.0


def wait_for_requests(emitter, count: int, deadline_s: float = 60.0) -> None:
    """Until the emitter has received `count` streaming requests (bounded in time)."""
    end = time.monotonic() + deadline_s
    while len(emitter.log()) < count:
        if time.monotonic() > end:
            raise AssertionError(f"the run sent fewer than {count} requests in {deadline_s} s")
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_interrupt_writes_what_was_measured_and_exits_130(start_emitter, demo_tokenizer,
                                                          tmp_path, scenario, sig):
    emitter = start_emitter(*SLOW_EMITTER)
    output_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "client_sut", "run", "--endpoint", emitter.url, "--tokenizer",
         str(demo_tokenizer), "--dataset", str(SHARED_DATA), "--total-sample-count", "50",
         "--output-dir", str(output_dir), *SCENARIOS[scenario]],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        wait_for_requests(emitter, 12)
        sent_at = time.monotonic()
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=60)
        took = time.monotonic() - sent_at
    finally:
        process.kill()
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
