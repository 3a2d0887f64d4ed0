"""A replica that dies stops drawing the load, and draws it again once it is back.

Two emitters behind one run; one exits mid-run as a crashed server does. Least-outstanding
balancing alone would send it most of what follows (its requests fail at once, so it always has
the fewest in flight); with outlier ejection it gets a handful, is taken out, and the other
replica carries on without a failure. Started again on its port, it is put back when its health
path answers, and serves again. The run still fails: requests failed, on that replica.
"""

from __future__ import annotations

import json

from tests.conftest import SHARED_DATA, wait_for_requests

EMITTER = ("--first-token-ms", "20", "--gap-ms", "5", "--output-tokens", "8")
DIES_AT = 60  # its 60th request, warm-up included: about 1.5 s into the run
SERVER = ("--scenario", "Server", "--target-qps", "40", "--duration", "10",
          "--min-query-count", "400", "--total-sample-count", "24")


def test_a_dead_replica_is_ejected_and_put_back_when_it_answers(start_emitter, start_run,
                                                                 demo_tokenizer, tmp_path):
    live = start_emitter(*EMITTER)
    dying = start_emitter(*EMITTER, "--die-after", str(DIES_AT))
    port = dying.url.rsplit(":", 1)[1]
    output_dir = tmp_path / "run"
    run = start_run("--endpoint", live.url, "--endpoint", dying.url, "--tokenizer",
                    str(demo_tokenizer), "--dataset", str(SHARED_DATA), *SERVER,
                    "--output-dir", str(output_dir))
    dying.process.wait(60)
    # Back once the live replica has served 100 more: a while out of the balance.
    wait_for_requests(live, len(live.log()) + 100)
    start_emitter(*EMITTER, "--port", port)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stdout + stderr  # requests failed: no pass

    results = json.loads((output_dir / "results.json").read_text())
    requests = [json.loads(line) for line in (output_dir / "requests.jsonl").read_text()
                .splitlines()]
    by_url = {e["url"]: e for e in results["endpoints"]}
    assert by_url[live.url]["errors"] == 0 and by_url[live.url]["ejections"] == []
    [ejection] = by_url[dying.url]["ejections"]
    assert "connections in a row failed" in ejection["reason"]
    assert ejection["readmitted_because"].startswith("its health path answered")

    died_ns = min(r["end_ns"] for r in requests if r["error"] and r["endpoint"] == dying.url)
    while_out = [r for r in requests if died_ns <= r["send_ns"] < ejection["readmitted_ns"]]
    to_dead = [r for r in while_out if r["endpoint"] == dying.url]
    assert len(while_out) >= 50, len(while_out)
    assert len(to_dead) < 0.1 * len(while_out), (len(to_dead), len(while_out))
    back = [r for r in requests if r["send_ns"] > ejection["readmitted_ns"]
            and r["endpoint"] == dying.url]
    assert back and all(r["error"] is None for r in back)

    assert results["compliance_notes"][0].startswith(
        f"{results['client']['errors']:,} of {results['client']['requests']:,} requests failed "
        f"(on {dying.url} ")
    assert f"{dying.url} taken out of the balance" in stderr
    assert f"{dying.url} back in the balance" in stderr


def test_with_one_endpoint_nothing_is_ever_ejected(start_emitter, run_cli, demo_tokenizer):
    """With nowhere else to send them, its requests fail, as they would."""
    dying = start_emitter(*EMITTER, "--die-after", "10")
    run = run_cli("--endpoint", dying.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), "--scenario", "Offline", "--duration", "0.1",
                  "--min-query-count", "40", "--total-sample-count", "24")
    assert run.returncode == 1
    [endpoint] = run.results["endpoints"]
    assert endpoint["ejections"] == [] and endpoint["errors"] >= 30
