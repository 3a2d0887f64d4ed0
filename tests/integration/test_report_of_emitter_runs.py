"""Real `client-sut run`s against the emitter (which exposes vLLM's /metrics): the plain progress
of a run that is not on a terminal, the scraped server metrics joined to the run, and the report
of a run, of several runs and of an sla folder, opened in headless Chromium.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from client_sut.servers.emitter import EmitterProcess
from tests.browser import visit_page
from tests.conftest import CLI_TIMEOUT_S, REPO, SHARED_DATA

# Its Server run must be VALID at a rate the emitter serves only with the cores to itself:
# make test runs the timing tests alone.
pytestmark = pytest.mark.timing

TOKENS = 32
RUN_FIGURES = {"fig-latency-cdfs", "fig-over-time", "fig-endpoints", "fig-server-metrics"}
# What the page shows, read in the browser: each verdict, and each figure with its drawing size.
PAGE_FACTS = """({
  verdicts: [...document.querySelectorAll('[data-verdict]')].map(e => e.textContent.trim()),
  figures: [...document.querySelectorAll('figure')].map(f => ({
      id: f.id, svg: !!f.querySelector('svg path'),
      height: f.querySelector('svg') ? f.querySelector('svg').getBoundingClientRect().height : 0})),
  method: document.getElementById('method').textContent,
  external: [...document.querySelectorAll('[src],[href],link,script')].length
})"""


def cli_run(emitter: EmitterProcess, tokenizer: Path, output: Path, *args: str):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-m", "client_sut", "run", "--endpoint", emitter.url, "--tokenizer",
         str(tokenizer), "--dataset", str(SHARED_DATA), "--total-sample-count", "100",
         "--output-dir", str(output), *args],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, cwd=REPO, env=env)


@pytest.fixture(scope="module")
def server_run(tmp_path_factory, demo_tokenizer):
    """One Server run of ~12 s (a plain progress line is due every 10 s), its stderr a pipe."""
    emitter = EmitterProcess("--first-token-ms", "20", "--gap-ms", "2", "--output-tokens",
                             str(TOKENS))
    output = tmp_path_factory.mktemp("report") / "server-run"
    try:
        completed = cli_run(emitter, demo_tokenizer, output, "--scenario", "Server",
                            "--target-qps", "60", "--duration", "12", "--min-query-count", "600")
        log = emitter.log()
    finally:
        emitter.stop()
    assert completed.returncode == 0, completed.stderr
    return completed, output, log


def test_a_run_off_a_terminal_prints_plain_progress_lines(server_run):
    completed, _, _ = server_run
    lines = [line for line in completed.stderr.splitlines() if "to min duration" in line]
    assert lines, completed.stderr
    assert all("issued" in line and "tok/s" in line and "TTFT p99" in line
               and "(limit 2,000)" in line and "server waiting" in line for line in lines)
    assert "\x1b[" not in completed.stderr  # no terminal control codes in a log


def test_scraped_metrics_are_joined_to_the_run_and_token_counts_agree(server_run):
    _, output, log = server_run
    results = json.loads((output / "results.json").read_text())
    [endpoint] = results["endpoints"]
    server = endpoint["server"]
    assert server["scraped"] and server["notes"] == []
    # The warm-up's requests came before the window's baseline scrape: only the run's count.
    assert server["server_generation_tokens"] == results["client"]["output_tokens"] \
        == TOKENS * results["client"]["requests"]
    assert server["output_tokens_agree"] and server["prompt_tokens_agree"]
    assert server["server_prompt_tokens"] == server["client_prompt_tokens"] > 0
    assert server["running"]["max"] >= 1 and server["kv_cache_usage_max"] > 0
    ttft = server["ttft_ms"]
    assert ttft["count"] == results["client"]["requests"]
    # The emitter's own histogram holds its truth (20 ms and a little): in its 20-40 ms bucket.
    assert ttft["bucket_ms"]["p50"] == [20.0, 40.0]
    assert server["itl_ms"] is None  # the emitter exposes none: left out, not an error
    scraped = (output / "server_metrics.jsonl").read_text().splitlines()
    every = [json.loads(line) for line in scraped]
    lines = [line for line in every if line["source"] == "server"]
    assert lines and all("error" not in line for line in lines)
    # Each round also asks the health path: the emitter answered every time.
    health = [line for line in every if line["source"] == "health"]
    assert len(health) == len(lines) and {line["answer"] for line in health} == {"answered"}
    assert endpoint["health"]["state"] == "answering"
    times = [line["t_ns"] for line in lines]
    window = results["server_metrics"]["window_ms"]
    assert times[0] < window[0] * 1e6 and times[-1] > window[1] * 1e6  # around the window
    assert results["system"]["client_host"]["cpu_cores"] >= 1
    assert results["system"]["servers"][0]["max_model_len"] == 8192
    assert results["system"]["servers"][0]["version"] is None  # the emitter has no /version
    # Neither the dialect probe's one request nor the warm-up's 4 were counted.
    assert len(log) == results["client"]["requests"] + 1 + 4


def test_the_report_of_a_run_renders_offline_in_chromium(server_run):
    _, output, _ = server_run
    report = output / "report.html"
    assert report.is_file()  # written by the run itself
    visit = visit_page(report, PAGE_FACTS)
    (output / "report.png").write_bytes(visit.screenshot)
    assert visit.screenshot.startswith(b"\x89PNG")
    assert visit.errors == []
    assert visit.requests == [report.resolve().as_uri()]  # nothing fetched but the page
    facts = visit.values
    assert facts["verdicts"] == ["VALID"] and facts["external"] == 0
    assert {f["id"] for f in facts["figures"]} == RUN_FIGURES
    assert all(f["svg"] and f["height"] > 100 for f in facts["figures"])
    assert "linear" in facts["method"] and "CLOCK_MONOTONIC" in facts["method"]
    assert {p.name for p in (output / "report_figures").iterdir()} == {
        f"{name[4:]}.svg" for name in RUN_FIGURES}


def sla_probe(target_qps: float, verdict: str, results: dict, directory: str) -> dict:
    loadgen = results["loadgen"]
    return {"target_qps": target_qps, "duration_s": 3, "requests": results["client"]["requests"],
            "result": loadgen["result"], "ttft_p99_ms": loadgen["ttft_ms"]["p99"],
            "tpot_p99_ms": loadgen["tpot_ms"]["p99"], "errors": results["client"]["errors"],
            "early_stopping_met": loadgen["early_stopping_met"], "verdict": verdict,
            "reason": f"{verdict} by this test", "dir": directory}


def test_the_report_of_an_sla_folder_and_of_several_runs(server_run, demo_tokenizer,
                                                         tmp_path):
    """An sla folder as `client-sut sla` writes it: probe run folders from real runs, sla.json
    in the contract's shape."""
    folder = tmp_path / "sla"
    emitter = EmitterProcess("--first-token-ms", "20", "--gap-ms", "2", "--output-tokens",
                             str(TOKENS))
    probes, goodput = [], None
    try:
        for number, (qps, verdict) in enumerate(((20.0, "pass"), (40.0, "fail")), start=1):
            directory = f"probe-{number}-{qps:g}qps"
            completed = cli_run(emitter, demo_tokenizer, folder / directory, "--scenario",
                                "Server", "--target-qps", str(qps), "--duration", "3",
                                "--min-query-count", "60", "--no-report", "--progress", "none")
            assert completed.returncode in (0, 1), completed.stderr
            assert not (folder / directory / "report.html").exists()
            results = json.loads((folder / directory / "results.json").read_text())
            probes.append(sla_probe(qps, verdict, results, directory))
            goodput = goodput or results["client"]["goodput"]
    finally:
        emitter.stop()
    stopped = "stopped early: 21 requests over the 2000 ms TTFT limit (21 still waiting)"
    probes[1].update(stopped_early=True, constraint="ttft", reason=stopped)
    (folder / "sla.json").write_text(json.dumps({
        "scenario": "Server", "limits": {"ttft_ms": 2000.0, "tpot_ms": 100.0, "official": True},
        "answer_qps": 20.0, "confirmed": True, "lowest_failing_qps": 40.0,
        "binding_constraint": "ttft", "goodput": goodput, "probes": probes,
        "compliance_notes": ["the confirmation ran 3 s, under the official 600 s"],
        "confirmation": {**probes[0], "dir": probes[0]["dir"]}, "interrupted": False}))
    out = tmp_path / "report"
    completed = subprocess.run(
        [sys.executable, "-m", "client_sut", "report", str(folder), str(server_run[1]),
         str(folder / probes[1]["dir"]), "--output-dir", str(out)],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, cwd=REPO)
    assert completed.returncode == 0, completed.stderr
    report = out / "report.html"
    visit = visit_page(report, PAGE_FACTS)
    (out / "report.png").write_bytes(visit.screenshot)
    assert visit.errors == [] and visit.requests == [report.resolve().as_uri()]
    facts = visit.values
    assert facts["verdicts"][0] == "20 QPS within the limits"
    assert facts["verdicts"][1] == "VALID" and len(facts["verdicts"]) == 3
    ids = [f["id"] for f in facts["figures"]]
    assert ids[0] == "fig-runs" and "fig-sla" in ids and ids.count("fig-latency-cdfs") == 2
    page = report.read_text()  # the answer in words: goodput, and why it is not compliant
    assert f"goodput at the answer: {goodput['requests_within_limits']:,} requests" in page
    assert "not compliant: the confirmation ran 3 s, under the official 600 s" in page
    # Each probe says why; the one stopped for its TTFT shows no p99 of the completed alone.
    assert stopped in page and "pass by this test" in page
    assert "&gt; 2,000 (stopped)" in page
    assert all(f["svg"] and f["height"] > 100 for f in facts["figures"])


def test_report_of_a_folder_without_results_is_a_usage_error(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "client_sut", "report", str(tmp_path)],
                               capture_output=True, text=True, timeout=CLI_TIMEOUT_S, cwd=REPO)
    assert completed.returncode == 2
    assert "holds no results.json (a run), sla.json (an sla search) or sweep.json" \
        in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1


NODES_PAGE = """[...document.querySelectorAll('#nodes tr')].filter(row => row.querySelector('td'))
    .map(row => [...row.querySelectorAll('td')].map(cell => cell.textContent))"""


def test_the_nodes_of_one_benchmark_combined(server_run, demo_tokenizer, tmp_path):
    """A second node (its own server, its own client) beside the module's Server run: the
    per-node table and the combined figures, percentiles over the pooled requests."""
    from client_sut.analysis.metrics import summarize_ms, ttft_ns
    from client_sut.requests_file import read_requests

    emitter = EmitterProcess("--first-token-ms", "40", "--gap-ms", "2", "--output-tokens",
                             str(TOKENS))
    second = tmp_path / "node-2"
    try:
        completed = cli_run(emitter, demo_tokenizer, second, "--scenario", "Server",
                            "--target-qps", "30", "--duration", "3", "--min-query-count", "100",
                            "--no-report")
    finally:
        emitter.stop()
    assert completed.returncode in (0, 1), completed.stderr
    first = server_run[1]
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "client_sut", "report", "--nodes", str(first),
                           str(second), "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, cwd=REPO)
    assert done.returncode == 0, done.stderr
    visit = visit_page(out / "report.html", NODES_PAGE)
    assert visit.errors == []
    node_1, node_2, combined = visit.values
    assert [node_1[0], node_2[0], combined[0]] == ["server-run", "node-2", "all 2 nodes"]
    runs = [json.loads((folder / "results.json").read_text()) for folder in (first, second)]
    assert int(combined[4].replace(",", "")) == sum(r["client"]["requests"] for r in runs)
    # The combined TTFT p99 is the pooled requests' p99, not the mean of the nodes' p99s.
    pooled = [r for folder in (first, second) for r in read_requests(folder / "requests.jsonl")]
    p99 = summarize_ms(t for t in map(ttft_ns, pooled) if t is not None)["p99"]
    assert float(combined[7].replace(",", "")) == pytest.approx(p99, abs=0.06)
    page = (out / "report.html").read_text()
    assert "never an average of the nodes&#x27; percentiles" in page or \
        "never an average of the nodes' percentiles" in page
    # Nodes of one benchmark run one scenario: a run of another is refused, in one line.
    offline = tmp_path / "offline"
    (offline).mkdir()
    (offline / "results.json").write_text(json.dumps({**runs[1], "scenario": "Offline"}))
    (offline / "requests.jsonl").write_text((second / "requests.jsonl").read_text())
    refused = subprocess.run([sys.executable, "-m", "client_sut", "report", "--nodes",
                              str(first), str(offline)], capture_output=True, text=True,
                             timeout=CLI_TIMEOUT_S, cwd=REPO)
    assert refused.returncode == 2 and "run one scenario" in refused.stderr
