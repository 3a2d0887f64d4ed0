"""Was the client the bottleneck? A run whose client shares its core with a busy loop says so
and is not compliant; the same run with the core to itself says it was not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import SHARED_DATA

# Its verdict rests on the client's own timing: with the cores to itself (make test runs the
# timing tests alone, after the parallel ones).
pytestmark = pytest.mark.timing

EMITTER = ("--first-token-ms", "5", "--gap-ms", "2", "--output-tokens", "16")
SERVER = ("--scenario", "Server", "--target-qps", "100", "--duration", "3",
          "--min-query-count", "300", "--total-sample-count", "50")
CLIENT_CORE = {0}


def busy_loop_on(cores: set[int]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, cores))


def test_a_starved_client_says_it_was_the_bottleneck(start_emitter, run_cli, demo_tokenizer):
    others = set(os.sched_getaffinity(0)) - CLIENT_CORE
    if not others:
        pytest.fail("this test needs two cores: one for the client, one for the emitter")
    emitter = start_emitter(*EMITTER)
    os.sched_setaffinity(emitter.process.pid, others)
    args = ("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
            str(SHARED_DATA), *SERVER)

    alone = run_cli(*args, cores=CLIENT_CORE)
    room = alone.results["client"]["headroom"]
    assert not room["bottleneck"], room
    assert room["verdict"].startswith("the client was not the bottleneck (used ")
    assert room["verdict"] in alone.stdout

    busy = busy_loop_on(CLIENT_CORE)
    try:
        starved = run_cli(*args, cores=CLIENT_CORE)
    finally:
        busy.kill()
        busy.wait()
    results = starved.results
    room = results["client"]["headroom"]
    assert room["bottleneck"], room
    assert room["verdict"].startswith("the client was the bottleneck: these latencies are "
                                      "partly the client's")
    assert not results["compliant"] and room["verdict"] in results["compliance_notes"]
