"""Copies the runs into the v6.x layout and writes the files beside them (I/O).

Everything is checked before the first file is written (see `command`); a folder already there
for this division and submitter is replaced, nothing else under the root is touched.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from client_sut.submission.formats import (
    accuracy_text,
    hash_line,
    measurements_readme,
    truncated_log,
    verification_text,
)
from client_sut.submission.layout import Layout, run_dir
from client_sut.submission.runs import run_results

LOADGEN_LOGS = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")
SRC_README = """# Source

`client_sut/` is the benchmark harness these results were measured with (MLCommons LoadGen
driving an async streaming client against vLLM OpenAI-compatible servers). Its README says how to
run it; `client-sut submission` made this folder.
"""


def _copy_logs(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in LOADGEN_LOGS:
        shutil.copy2(source / name, target / name)


def write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def write_source(src: Path) -> None:
    """This harness's code and a README into src (a submission's source folder)."""
    package = Path(str(resources.files("client_sut")))
    shutil.copytree(package, src / "client_sut",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (src / "README.md").write_text(SRC_README, encoding="utf-8")


def _accuracy(runs: Path, scenario: str, target: Path) -> None:
    source = run_dir(runs, scenario, "accuracy")
    _copy_logs(source, target)
    log = (source / "mlperf_log_accuracy.json").read_bytes()
    text = accuracy_text(run_results(runs, scenario, "accuracy")["accuracy"]) + hash_line(log)
    (target / "accuracy.txt").write_text(text, encoding="utf-8")
    (target / "mlperf_log_accuracy.json").write_bytes(truncated_log(log))


def _test06(runs: Path, scenario: str, target: Path) -> None:
    source = run_dir(runs, scenario, "TEST06")
    _copy_logs(source, target / "performance" / "run_1")
    (target / "accuracy").mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "mlperf_log_accuracy.json", target / "accuracy")
    audit = run_results(runs, scenario, "TEST06")["audit"]
    (target / "verify_accuracy.txt").write_text(verification_text(audit), encoding="utf-8")


def assemble(layout: Layout, runs: Path, scenarios: Sequence[str], system: dict,
             measurements: dict, user_confs: Mapping[str, Path], commands: Mapping[str, list[str]],
             software: str) -> None:
    if layout.org.exists():
        shutil.rmtree(layout.org)
    write_json(layout.system_json, system)
    write_source(layout.src)
    for scenario in scenarios:
        _copy_logs(run_dir(runs, scenario, "performance"), layout.performance(scenario))
        _accuracy(runs, scenario, layout.accuracy(scenario))
        _test06(runs, scenario, layout.test06(scenario))
        folder = layout.scenario(scenario)
        write_json(folder / "measurements.json", measurements)
        shutil.copy2(user_confs[scenario], folder / "user.conf")
        (folder / "README.md").write_text(
            measurements_readme(scenario, commands.get(scenario, []), software), encoding="utf-8")
