"""`client-sut sweep` against the emitter with K slots and a fixed engine step: the curve it
measures is the model the emitter implements, sweep.json keeps its contract, and a server that
dies ends the sweep with the points it measured."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from client_sut.analysis.curve import CurvePoint, pareto_front, round_rate
from client_sut.config import LatencyLimits
from client_sut.servers.emitter import EmitterProcess
from client_sut.sla.command import start_from_sweep
from client_sut.submission.checker import run_checker
from tests.browser import visit_page
from tests.conftest import REPO, SHARED_DATA, wait_for_requests
from tests.integration.test_submission import CHECKER, SYSTEM_FILE

# The curve is held to the emitter's model: run with the cores to themselves (make test
# runs the timing tests after the parallel ones).
pytestmark = pytest.mark.timing

SLOTS, STEP_MS, TOKENS, SAMPLES = 4, 5.0, 16, 24
EMITTER = ("--max-running", str(SLOTS), "--engine-step-ms", f"{STEP_MS:g}", "--output-tokens",
           str(TOKENS))
POINT_KEYS = {"name", "kind", "concurrency", "target_qps", "region", "dir", "exit_status",
              "wall_s", "planned", "aborted", "on_front", "requests", "errors", "output_tokens",
              "requests_per_s",
              "duration_s", "system_tokens_per_s", "tokens_per_s_per_user",
              "tokens_per_s_per_user_mean", "ttft_ms", "tpot_ms", "goodput", "loadgen_result",
              "failed_requests", "client_bottleneck",
              "mean_latency_s", "failed", "notes", "standard_errors"}


SWEEP_PAGE = """({
  verdict: document.querySelector('.sweep [data-verdict]').textContent.trim(),
  points: [...document.querySelectorAll('#points tbody tr td:first-child')]
      .map(cell => cell.textContent),
  figure: {paths: document.querySelectorAll('#fig-sweep svg path').length,
           height: document.querySelector('#fig-sweep svg').getBoundingClientRect().height}
})"""


def sweep(url: str, demo_tokenizer, output_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client_sut", "sweep", "--endpoint", url, "--tokenizer",
         str(demo_tokenizer), "--dataset", str(SHARED_DATA), "--total-sample-count",
         str(SAMPLES), "--point-duration", "2", "--warmup", "0", "--output-dir",
         str(output_dir), *args], cwd=REPO, capture_output=True, text=True, timeout=600)


@dataclass(frozen=True)
class Swept:
    done: subprocess.CompletedProcess
    output: Path


def swept(emitter_args, demo_tokenizer, output: Path, *args: str) -> Swept:
    emitter = EmitterProcess(*emitter_args)
    try:
        return Swept(sweep(emitter.url, demo_tokenizer, output, *args), output)
    finally:
        emitter.stop()


@pytest.fixture(scope="module")
def curve(demo_tokenizer, tmp_path_factory) -> Swept:
    """The curve of the emitter with 4 slots (shared: the side-by-side report reads it too)."""
    return swept(EMITTER, demo_tokenizer, tmp_path_factory.mktemp("curve"), "--concurrency",
                 "1,4,8")


@pytest.fixture(scope="module")
def emitted(demo_tokenizer, tmp_path_factory) -> Swept:
    """A sweep laid out for the v6.1 checker, against the emitter with 16 slots (its Server
    point's 662 requests take seconds, not half a minute)."""
    output = tmp_path_factory.mktemp("emitted")
    system_file = output.parent / "system.toml"
    system_file.write_text(SYSTEM_FILE)
    return swept(("--max-running", "16", *EMITTER[2:]), demo_tokenizer, output / "sweep",
                 "--concurrency", "1,4", "--emit", "endpoints-v61", "--emit", "endpoints-v1",
                 "--system-file", str(system_file), "--checker", str(CHECKER))


def test_the_curve_is_the_model_the_emitter_implements(curve):
    done, tmp_path = curve.done, curve.output
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "sweep.json").read_text())
    assert result["verdict"] == "complete" and result["plan"]["points"] == [
        "c0001", "c0004", "c0008", "offline"]
    points = {p["name"]: p for p in result["points"]}
    for point in points.values():
        assert set(point) == POINT_KEYS, set(point) ^ POINT_KEYS
        assert point["errors"] == 0 and point["loadgen_result"] == "VALID"
        # Whole passes over the dataset, as planned, in a folder as `run` writes it.
        assert point["requests"] == point["planned"]["queries"]
        assert point["requests"] % SAMPLES == 0
        assert (tmp_path / point["dir"] / "results.json").is_file()
        # Every stream gets a token each engine step, whatever the concurrency.
        assert STEP_MS * 0.9 <= point["tpot_ms"]["p90"] <= STEP_MS * 1.5, point["tpot_ms"]
        assert point["tokens_per_s_per_user"] == round(1000 / point["tpot_ms"]["p90"], 3)
        check_endpoints_files(tmp_path / point["dir"], point)
    tps = {name: p["system_tokens_per_s"] for name, p in points.items()}
    # System tokens/s rises with concurrency up to the slots, then holds...
    assert 3.2 <= tps["c0004"] / tps["c0001"] <= 4.8
    assert 0.85 <= tps["c0008"] / tps["c0004"] <= 1.15
    # ...and past them the requests queue for a slot: the first token waits.
    assert points["c0008"]["ttft_ms"]["p90"] > 2 * points["c0004"]["ttft_ms"]["p90"]
    # The front is the non-dominated set, each point marked.
    expected = pareto_front([CurvePoint(p["name"], p["system_tokens_per_s"],
                                        p["tokens_per_s_per_user"]) for p in points.values()])
    assert result["front"] == expected
    assert {name for name, p in points.items() if p["on_front"]} == set(expected)
    assert max(tps, key=tps.get) in expected  # nothing beats the most tokens/s on both axes
    assert not result["compliant"]
    assert any("--point-duration 2 s" in note for note in result["compliance_notes"])
    assert result["definitions"]["tokens_per_s_per_user"].startswith("1000 / TPOT p90")
    assert [pilot["name"] for pilot in result["pilots"]] == ["pilot-offline", "pilot-c0001"]
    assert "front:" in done.stdout
    # Its report: the table of points and the Endpoints figures, drawn and opened in Chromium.
    report = tmp_path / "report.html"
    visit = visit_page(report, SWEEP_PAGE)
    assert visit.errors == [] and visit.requests == [report.resolve().as_uri()]
    facts = visit.values
    assert facts["verdict"].startswith("4 points measured (complete); front:")
    assert facts["points"] == ["c0001", "c0004", "c0008", "offline"]
    assert facts["figure"]["paths"] > 20 and facts["figure"]["height"] > 100
    # The curve says where a Server search should start: within the measured rates.
    rate, rule = start_from_sweep(tmp_path, LatencyLimits(200.0, 100.0))
    rates = sorted(round_rate(p["requests_per_s"]) for p in points.values())  # as the start is
    assert rates[0] <= rate <= rates[-1] and str(tmp_path) in rule


def check_endpoints_files(folder, point: dict) -> None:
    """The point's MLPerf Endpoints files agree with sweep.json and with each other."""
    summary = json.loads((folder / "performance" / "result_summary.json").read_text())
    assert summary["n_samples_issued"] == summary["n_samples_completed"] == point["requests"]
    assert summary["n_samples_failed"] == 0 and summary["state"] == "complete"
    # Endpoints' checker derives system_tps from these and wants the stored one within 1%.
    derived = summary["output_sequence_lengths"]["total"] / (summary["duration_ns"] / 1e9)
    assert abs(derived / point["system_tokens_per_s"] - 1) < 0.01
    assert summary["tps"] == derived and summary["ttft"]["percentiles"]["90.0"] > 0
    assert summary["input_sequence_lengths"]["min"] > 0  # the prompts' token counts
    assert summary["run_config"]["dataloader_random_seed"] == 2747215439041700203
    early = summary["tpot"]["early_stopping_percentiles"]
    # Bounds at 99% confidence need 64 requests at p90, 662 at p99.
    assert (early["90.0"] is None) == (point["requests"] < 64) and early["99.0"] is None
    config = yaml.safe_load((folder / "config.yaml").read_text())
    pattern = config["settings"]["load_pattern"]
    if point["kind"] == "concurrency":  # Endpoints' `benchmark online` at a concurrency
        assert config["type"] == "online"
        assert pattern == {"type": "concurrency", "target_concurrency": point["concurrency"]}
    else:
        assert (config["type"], pattern) == ("offline", {"type": "max_throughput"})
    runtime = config["settings"]["runtime"]
    assert runtime["scheduler_random_seed"] == 16159082839903944936
    # The official floor, and the 2 s the point was cut to.
    assert runtime["min_duration_ms"] >= 600_000 and runtime["max_duration_ms"] == 2000
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    kinds = [event["event_type"] for event in events]
    assert kinds[:2] == ["session.started", "session.start_performance_tracking"]
    assert kinds[-2:] == ["session.stop_performance_tracking", "session.ended"]
    assert kinds.count("sample.issued") == kinds.count("sample.complete") == point["requests"]
    assert kinds.count("sample.recv_first") == point["requests"]
    stamps = [event["timestamp_ns"] for event in events]
    assert stamps == sorted(stamps)


def test_a_server_that_dies_ends_the_sweep_with_what_it_measured(start_emitter, demo_tokenizer,
                                                                 tmp_path):
    # The pilots and c0001 take about 80 requests; the server dies at the 100th, in c0004.
    emitter = start_emitter(*EMITTER, "--die-after", "100")
    done = sweep(emitter.url, demo_tokenizer, tmp_path, "--concurrency", "1,4",
                 "--first-byte-timeout", "5")
    assert done.returncode == 3, done.stderr[-3000:]
    result = json.loads((tmp_path / "sweep.json").read_text())
    assert result["verdict"] == "server_lost" and result["aborted"]["during"] == "c0004"
    assert emitter.url in result["aborted"]["reason"]
    first, lost = result["points"]
    assert first["name"] == "c0001" and not first["failed"] and first["on_front"]
    assert lost["name"] == "c0004" and lost["aborted"]
    assert "the sweep stops (exit 3)" in done.stderr


def test_an_interrupt_keeps_the_point_under_way_and_ends_the_sweep(start_emitter, demo_tokenizer,
                                                                   tmp_path):
    emitter = start_emitter(*EMITTER)
    process = subprocess.Popen(
        [sys.executable, "-m", "client_sut", "sweep", "--endpoint", emitter.url, "--tokenizer",
         str(demo_tokenizer), "--dataset", str(SHARED_DATA), "--total-sample-count",
         str(SAMPLES), "--rates", "20,40", "--point-duration", "60", "--warmup", "0",
         "--output-dir", str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        wait_for_requests(emitter, 20)  # the first point is under way
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    result = json.loads((tmp_path / "sweep.json").read_text())
    assert result["verdict"] == "interrupted" and result["pilots"] == []  # rates: no pilots
    [point] = result["points"]  # the second point never started
    assert point["name"] == "r20qps" and "interrupted" in point["notes"]
    summary = json.loads((tmp_path / "r20qps" / "performance" / "result_summary.json")
                         .read_text())
    assert summary["state"] == "interrupted" and summary["n_samples_completed"] >= 20
    assert summary["run_config"]["load_pattern"]["type"] == "poisson"
    assert summary["legacy_loadgen_window_duration_ns"] > 0  # LoadGen's window at a rate


def test_sla_from_a_folder_with_no_sweep_is_bad_input(tmp_path):
    done = subprocess.run([sys.executable, "-m", "client_sut", "sla", "--endpoint",
                           "http://127.0.0.1:9", "--dataset", str(SHARED_DATA), "--from-sweep",
                           str(tmp_path), "--output-dir", str(tmp_path / "sla")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"client-sut sla: error: --from-sweep: {tmp_path / 'sweep.json'} is no sweep.json")


def test_a_sweep_at_fixed_concurrency_or_rates_not_both(demo_tokenizer, tmp_path):
    done = sweep("http://127.0.0.1:9", demo_tokenizer, tmp_path, "--concurrency", "1,2",
                 "--rates", "3")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "client-sut sweep: error: give --concurrency or --rates, not both: a curve is at fixed "
        "concurrency or at fixed rates")


def test_endpoints_v61_is_what_mlcommons_checker_accepts_and_our_checks_judge(emitted,
                                                                             tmp_path):
    done, output = emitted.done, emitted.output
    # The folder is not a valid result, and says why: 2 s points and the emitter's summaries.
    assert done.returncode == 1, done.stderr[-3000:]
    result = json.loads((output / "sweep.json").read_text())
    assert result["plan"]["points"] == ["c0001", "c0004", "offline", "server"]
    server = result["points"][-1]
    # The Server point runs where the curve puts the official limits' edge, long enough for
    # early-stopping p99s (662 requests), and is no point of the curve.
    assert server["kind"] == "server" and not server["failed"] and not server["on_front"]
    assert server["requests"] >= 662 and server["requests"] % SAMPLES == 0
    assert 0 < server["target_qps"] <= points_rate(result, "offline")
    emitted = result["emit"]["endpoints-v61"]
    assert {"Offline": "offline", "Server": "server"}.items() <= emitted["scenarios"].items()
    # MLCommons' checker, run unmodified, accepts the folder made from these real runs...
    checker = emitted["official_checker"]
    assert checker["passed"] and checker["errors"] == [], checker
    assert checker["skip_dataset_size_check"]  # 24 samples scored, not 13,368
    # ...and our own checks name what it does not look at.
    findings = emitted["extra_checks"]["findings"]
    assert any(f.startswith("Server: measured for") for f in findings)
    assert any(f.startswith("Offline: accuracy below the targets") for f in findings)
    scenario = Path(emitted["folder"]) / "results" / "emitter_cpu" / "llama3.1-8b" / "Server"
    config = yaml.safe_load((scenario / "config.yaml").read_text())
    assert config["type"] == "online" and config["settings"]["load_pattern"]["type"] == "poisson"
    runtime = config["settings"]["runtime"]
    assert runtime["min_duration_ms"] == 1_200_000 and runtime["max_duration_ms"] == 2000
    accuracy = json.loads((scenario / "accuracy" / "accuracy_results.json").read_text())
    assert accuracy["accuracy_scores"][0]["total_samples"] == SAMPLES
    # A planted fault in a copy: a TTFT bound over the Server limit. The checker refuses it.
    planted = tmp_path / "endpoints-v61"
    shutil.copytree(output / "endpoints-v61", planted)
    summary_path = planted / scenario.relative_to(output / "endpoints-v61") / "performance" / \
        "result_summary.json"
    summary = json.loads(summary_path.read_text())
    summary["ttft"]["early_stopping_percentiles"]["99.0"] = 2.5e9
    summary_path.write_text(json.dumps(summary))
    verdict = run_checker(CHECKER, planted, "TestOrg", tmp_path / "log",
                          tmp_path / "summary.csv", skip_dataset_size_check=True)
    assert not verdict.passed and verdict.returncode == 1
    assert any("TTFT" in error or "ttft" in error for error in verdict.errors), verdict.errors


def test_endpoints_v1_is_a_folder_per_point_with_what_keeps_it_from_a_bundle(emitted):
    result = json.loads((emitted.output / "sweep.json").read_text())
    bundle = result["emit"]["endpoints-v1"]
    # The concurrency points and Offline (its concurrency the dataset); not the Server point.
    assert bundle["points"] == {"c0001": "r1", "c0004": "r4", "offline": f"r{SAMPLES}"}
    assert bundle["regions"]["c0004"] == "low_latency"  # Ultra-Low's highest point
    results = Path(bundle["folder"]) / "results" / "emitter_cpu" / "llama3.1-8b"
    for name, folder in bundle["points"].items():
        files = {f.name for f in (results / folder).iterdir()}
        assert {"point.yaml", "result_summary.json", "config.yaml", "system_desc.json"} <= files
        assert ("accuracy_results.json" in files) == (name == "offline")
    point = yaml.safe_load((results / "r4" / "point.yaml").read_text())
    assert point["concurrency"] == 4 and point["runtime_settings"]["load_pattern"] == \
        "concurrency"
    assert point["warmup"]["requests_issued"] == point["warmup"]["requests_completed"] == 0
    findings = " | ".join(bundle["extra_checks"]["findings"])
    assert "c0001: measured for" in findings and "not a bound v1.0 seed set" in findings
    assert "no point in the required region(s) low, medium, high" in findings
    assert not bundle["passed"]
    assert result["accuracy"]["gen_num"] == SAMPLES and result["accuracy"]["dir"] == "accuracy"


SIDE_BY_SIDE = """({
  rows: [...document.querySelectorAll('#differences tr')].filter(row => row.querySelector('td'))
      .map(row => [...row.querySelectorAll('td')].map(cell => cell.textContent)),
  paths: document.querySelectorAll('#fig-sweeps svg path').length
})"""


def test_two_sweeps_side_by_side_with_what_lies_beyond_the_noise(curve, emitted, tmp_path):
    """The 4-slot emitter as the baseline, the 16-slot one as the candidate: with everything in
    flight (Offline) four times the slots serve about four times the tokens, far beyond the
    noise; at concurrency 1 and 4 the slots make no difference to serve."""
    done = subprocess.run([sys.executable, "-m", "client_sut", "report", str(curve.output),
                           str(emitted.output), "--output-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    visit = visit_page(tmp_path / "report.html", SIDE_BY_SIDE)
    assert visit.errors == [] and visit.values["paths"] > 20
    rows = {(row[1], row[2]): row for row in visit.values["rows"]}
    # Every point both measured, each figure with its noise.
    assert {point for point, _ in rows} == {"c0001", "c0004", "offline"} and len(rows) == 9
    assert all(row[6].startswith("±") for row in rows.values())
    offline = rows[("offline", "system tokens/s")]
    assert offline[7] == "yes" and float(offline[5].rstrip("%")) > 150


def points_rate(result: dict, name: str) -> float:
    return next(p["requests_per_s"] for p in result["points"] if p["name"] == name)
