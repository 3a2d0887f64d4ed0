"""`client-sut submission` on real runs against the emitter, checked by MLCommons' own checker.

The performance runs use a QSL of the benchmark's 13,368 samples (short synthetic articles: the
emitter answers any prompt), since the checker requires that performance sample count even in
open/; accuracy and TEST06 runs use 50 real CNN/DailyMail samples. Runs keep LoadGen's official
min_duration; a user.conf's max_duration ends the Interactive run after 6 s instead, and the
Server run for the closed folder is short by --duration.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from client_sut.analysis.loadgen_logs import parse_detail_log
from client_sut.servers.emitter import EmitterProcess
from client_sut.submission.checker import run_checker
from client_sut.submission.folder import check_folder
from client_sut.submission.layout import Layout
from tests.conftest import REPO, SHARED_DATA

CHECKER = REPO.parent / "shared" / "mlcommons-inference"
# Its Interactive run is VALID only when the emitter and the client have the cores to
# themselves: make test runs these timing tests alone.
pytestmark = [pytest.mark.timing,
              pytest.mark.skipif(not CHECKER.is_dir(),
                                 reason=f"MLCommons' checker is not at {CHECKER}")]
BENCHMARK_SAMPLES = 13_368
USER_CONF = """\
*.Offline.target_qps = 1
# Equal issue pads the Server run to the QSL's 13,368 queries: 33 s at this rate (134 s at 100).
llama3_1-8b.Server.target_qps = 400
llama3_1-8b-interactive.Server.target_qps = 100
# An Interactive run held to the Server limits: the checker takes it, the extra checks do not.
llama3_1-8b-interactive.Server.ttft_latency = 2000
llama3_1-8b-interactive.Server.tpot_latency = 100
llama3_1-8b-interactive.Server.max_duration = 6000
"""
SYSTEM_FILE = """\
system_id = "emitter_cpu"

[system]
submitter = "TestOrg"
system_name = "Loopback emitter on CPU (test)"
status = "available"
number_of_nodes = 1
host_memory_configuration = "test"
host_storage_type = "SSD"
host_networking = "loopback"
host_network_card_count = 0
host_networking_topology = "N/A"
accelerators_per_node = 0
accelerator_model_name = "N/A"
accelerator_memory_capacity = "N/A"
accelerator_host_interconnect = "N/A"
accelerator_memory_configuration = "N/A"
accelerator_interconnect = "N/A"
cooling = "air"
framework = "client_sut emitter"

[measurements]
retraining = "No"
weight_data_types = "N/A"
weight_transformations = "none"
"""
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def client_sut(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "client_sut", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=ENV)


@pytest.fixture(scope="module")
def made(tmp_path_factory, demo_tokenizer):
    """Every run the tests assemble, made once: runs/<Scenario>/<kind>/."""
    folder = tmp_path_factory.mktemp("submission")
    benchmark = folder / "benchmark.jsonl"
    with benchmark.open("w") as out:
        for i in range(BENCHMARK_SAMPLES):
            out.write(json.dumps({"article": f"Story {i}: a short test article.",
                                  "highlights": "A test."}) + "\n")
    (folder / "user.conf").write_text(USER_CONF)
    (folder / "system.toml").write_text(SYSTEM_FILE)
    emitter = EmitterProcess("--first-token-ms", "2", "--gap-ms", "1", "--output-tokens", "8")
    try:
        runs = folder / "runs"
        common = ["--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer),
                  "--user-conf", str(folder / "user.conf")]
        real = ["--dataset", str(SHARED_DATA), "--total-sample-count", "50"]
        extra = {"Server": ["--duration", "5", "--min-query-count", "500"]}
        for scenario in ("Offline", "Interactive", "Server"):
            for kind, args in (("performance", ["--dataset", str(benchmark),
                                                *extra.get(scenario, [])]),
                               ("accuracy", [*real, "--mode", "accuracy"]),
                               ("TEST06", [*real, "--audit", "TEST06"])):
                done = client_sut("run", *common, *args, "--scenario", scenario,
                                  "--output-dir", str(runs / scenario / kind))
                assert (runs / scenario / kind / "results.json").is_file(), done.stderr
    finally:
        emitter.stop()
    return folder


def submission(made: Path, division: str, *scenarios: str) -> tuple[subprocess.CompletedProcess,
                                                                      dict]:
    out = made / division
    args = ["submission", "--system-file", str(made / "system.toml"), "--checker", str(CHECKER),
            "--division", division, "--runs", str(made / "runs"), "--output-dir", str(out),
            "--user-conf", str(made / "user.conf"), "--skip-dataset-size-check"]
    for scenario in scenarios:
        args += ["--scenario", scenario]
    done = client_sut(*args)
    report = json.loads((out / "submission.json").read_text()) if done.returncode != 2 else {}
    return done, report


def findings(report: dict) -> set[tuple[str, str]]:
    return {(f["scenario"], f["check"]) for f in report["extra_checks"]["findings"]}


def test_runs_keep_loadgen_hygiene(made):
    """No trace file, no LoadGen error from a second FromConfig, Interactive as LoadGen's Server
    with the interactive model key (its user.conf lines are the ones that took effect)."""
    for detail in (made / "runs").glob("*/*/mlperf_log_detail.txt"):
        trace = detail.parent / "mlperf_log_trace.json"
        assert not trace.exists() or trace.stat().st_size == 0
        log = parse_detail_log(detail.read_text())
        assert not any("Multiple conf files" in error for error in log.errors), detail
    interactive = parse_detail_log((made / "runs/Interactive/performance/mlperf_log_detail.txt")
                                   .read_text()).values
    assert interactive["effective_scenario"] == "Server"
    assert (interactive["requested_server_ttft_latency"],
            interactive["requested_server_tpot_latency"]) == (2_000_000_000, 100_000_000)
    assert interactive["effective_performance_sample_count"] == BENCHMARK_SAMPLES


def test_open_folder_passes_the_official_checker_and_the_extra_checks_see_more(made):
    done, report = submission(made, "open", "Offline", "Interactive")
    assert report["official_checker"]["passed"], done.stdout + done.stderr
    assert "SUMMARY: submission looks OK" in (made / "open/checker.log").read_text()
    # What the checker let through: both runs INVALID (the official min_duration was not
    # served), a LoadGen error (max_duration cut the Interactive run), Server limits on an
    # Interactive run.
    assert findings(report) == {("Offline", "summary"), ("Interactive", "summary"),
                                ("Interactive", "loadgen_errors"),
                                ("Interactive", "latency_limits")}
    assert done.returncode == 1

    layout = Layout(made / "open/submission", "open", "TestOrg", "emitter_cpu")
    system = json.loads(layout.system_json.read_text())
    assert system["division"] == "open" and system["accelerators_per_node"] == "0"
    accuracy = layout.accuracy("Offline")
    text = (accuracy / "accuracy.txt").read_text()
    assert re.fullmatch(r"\nResults\n\n\{'rouge1': '[\d.]+', 'rouge2': '[\d.]+', 'rougeL': "
                        r"'[\d.]+', 'rougeLsum': '[\d.]+', 'gen_len': \d+, 'gen_num': 50\}\n"
                        r"\nhash=[0-9a-f]{64}\n", text)
    original = (made / "runs/Offline/accuracy/mlperf_log_accuracy.json").read_bytes()
    assert text.endswith(f"hash={hashlib.sha256(original).hexdigest()}\n")
    # Cut as truncate_accuracy_log.py cuts it: its first and last 4 KiB, under the checker's 10 KiB.
    truncated = (accuracy / "mlperf_log_accuracy.json").read_bytes()
    assert truncated == original[:4096] + b"\n\n...\n\n" + original[-4096:]
    assert len(truncated) < 10 * 1024
    assert (layout.test06("Offline") / "verify_accuracy.txt").read_text().startswith(
        "First token check pass: Skipped\n")
    scenario = layout.scenario("Interactive")
    assert (scenario / "user.conf").read_text() == USER_CONF
    assert set(json.loads((scenario / "measurements.json").read_text())) >= {
        "input_data_types", "retraining", "starting_weights_filename", "weight_data_types",
        "weight_transformations"}
    assert (layout.src / "client_sut" / "runs" / "runner.py").is_file()


def test_numpy_scalars_in_accuracy_txt_pass_the_checker_but_not_the_extra_checks(made,
                                                                                   tmp_path):
    root = tmp_path / "submission"
    shutil.copytree(made / "open/submission", root)
    layout = Layout(root, "open", "TestOrg", "emitter_cpu")
    path = layout.accuracy("Offline") / "accuracy.txt"
    path.write_text(re.sub(r"'gen_len': (\d+)", r"'gen_len': np.int64(\1)", path.read_text()))
    verdict = run_checker(CHECKER, root, "TestOrg", tmp_path / "checker.log",
                          tmp_path / "summary.csv", skip_dataset_size_check=True)
    assert verdict.passed  # open/ does not judge accuracy.txt
    accuracy = [f for f in check_folder(layout, eos_token_id=None) if f.check == "accuracy_txt"]
    assert [(f.scenario, "np.int64" in f.message) for f in accuracy] == [("Offline", True)]


# Each error the checker reports for a closed folder of short runs, and why a short run has it.
SHORT_RUN_REASONS = {
    "duration": r"Test duration less than 600s in user config\. expected=600000, found=5000",
    # The emitter's answers on a 50-sample subset: far below the ROUGE and gen_len targets.
    "accuracy": r"^Some accuracy checks Checks failed for: .*/accuracy/",
    "consequences": r"^Some performance checks Checks failed for: .*/Server/performance/|"
                    r"^NoResults |^SUMMARY: submission has errors",
}


def test_closed_folder_with_a_short_server_run_fails_for_its_duration(made):
    done, report = submission(made, "closed", "Offline", "Server")
    checker = report["official_checker"]
    assert not checker["passed"] and checker["exit_status"] == 1, done.stdout + done.stderr
    reasons = {}
    for error in checker["errors"]:
        matched = [name for name, pattern in SHORT_RUN_REASONS.items()
                   if re.search(pattern, error)]
        assert matched, f"the checker found something a short run does not explain: {error}"
        reasons.setdefault(matched[0], []).append(error)
    assert set(reasons) == set(SHORT_RUN_REASONS)
    assert len(reasons["duration"]) == 1 and "/Server/performance/" in reasons["duration"][0]
    assert findings(report) == {("Offline", "summary"), ("Server", "min_duration")}
    assert done.returncode == 1


def test_a_missing_system_field_stops_everything_before_a_run(tmp_path):
    (tmp_path / "system.toml").write_text(SYSTEM_FILE.replace('cooling = "air"\n', ""))
    out = tmp_path / "out"
    done = client_sut("submission", "--system-file", str(tmp_path / "system.toml"), "--checker",
                      str(CHECKER), "--output-dir", str(out), "--",
                      "--endpoint", "http://127.0.0.1:9", "--dataset", str(SHARED_DATA))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "client-sut submission: error: the system description lacks cooling: add them under "
        "[system] in the system file (the tool could not see them)")
    assert not (out / "runs").exists() and not (out / "submission").exists()
