"""`sweep --emit`: the sweep's points laid out for MLCommons' checkers.

`endpoints-v61`: as the MLPerf Inference checker (v6.1, endpoints mode) reads a scenario, then
that checker's verdict and what it does not check.

`endpoints-v61/<division>/<submitter>/`: `systems/<system>.json`, `src/` (this harness), and per
scenario `results/<system>/llama3.1-8b/<Scenario>/` with the point's `config.yaml` and
`performance/result_summary.json`, `accuracy/accuracy_results.json` (the sweep's accuracy run:
Offline, every sample once, ROUGE as MLPerf scores it), `measurements.json` and `README.md`.
scenario_pick.py says which point fills which scenario.

`endpoints-v1`: an MLPerf Endpoints v1.0 bundle, `endpoints-v1/<submitter>/<SUBMISSION_ID>/`
with `src/` and `results/<system>/llama3.1-8b/r<N>/` per concurrency point (and the Offline
point): `point.yaml`, `system_desc.json`, `result_summary.json`, `config.yaml`, and
`accuracy_results.json` where accuracy was scored (the Offline point). Its checker (the
endpoints submission CLI) is not at hand, so endpoints_v1.py's checks say what is missing.

Every input is checked (prepare_emit) before the first point runs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from client_sut.accuracy.rouge import ROUGE_KEYS
from client_sut.errors import UsageError
from client_sut.result_files.sweep import SweepPoint
from client_sut.submission import probe
from client_sut.submission.assemble import write_json, write_source
from client_sut.submission.checker import run_checker, tools_dir
from client_sut.submission.layout import DIVISIONS, Layout
from client_sut.submission.system import (
    measurements,
    read_user_description,
    system_description,
)
from client_sut.sweep.endpoints_v1 import (
    folder_name,
    point_yaml,
    region_labels,
    v1_findings,
)
from client_sut.sweep.plan import CONCURRENCY, OFFLINE
from client_sut.sweep.scenario_pick import (
    DATASET_SAMPLES,
    candidate,
    missed_by_checker,
    pick_scenarios,
)

V61_FOLDER, V1_FOLDER = "endpoints-v61", "endpoints-v1"
SUBMISSION_ID = "client-sut-sweep"
# The checker's CSV gives Offline's samples/s the unit it gives Server's tokens/s.
CHECKER_NOTES = ("the checker's summary CSV labels Offline's result (samples/s) as Tokens/s",)


@dataclass(frozen=True, slots=True)
class EmitTarget:
    """What the layout needs beyond the points: checked before anything runs."""

    system_id: str
    system: dict  # systems/<system_id>.json
    measurements: dict
    division: str
    checker: Path | None  # a checkout of mlcommons/inference, to run its checker

    @property
    def submitter(self) -> str:
        return str(self.system["submitter"])


def prepare_emit(system_file: Path | None, checker: Path | None, division: str,
                 endpoints: Sequence[str], output_dir: Path) -> EmitTarget:
    if system_file is None:
        raise UsageError("--emit needs --system-file: the TOML file describing the system "
                         "(see docs/submission.md)")
    if division not in DIVISIONS:
        raise UsageError(f"--division {division!r} is not one of {', '.join(DIVISIONS)}")
    if checker is not None:
        tools_dir(checker)
    user = read_user_description(system_file)
    seen_system, seen_measurements = probe.detected(endpoints, output_dir)
    system = system_description(seen_system, user, division)
    if "/" in str(system["submitter"]):
        raise UsageError(f"submitter {system['submitter']!r} names a folder: drop the '/'")
    return EmitTarget(user.system_id, system, measurements(seen_measurements, user), division,
                      checker)


def accuracy_results(accuracy: Mapping, duration_s: float) -> dict:
    """accuracy/accuracy_results.json as MLPerf Endpoints writes it for a ROUGE dataset: the
    scores as strings with four decimals, gen_len and gen_num beside them."""
    score = {key: f"{accuracy[key]:.4f}" for key in ROUGE_KEYS}
    score.update(gen_len=str(accuracy["gen_len"]), gen_num=accuracy["gen_num"])
    samples = accuracy["gen_num"]
    return {"accuracy_scores": [{
        "dataset_name": "cnn_dailymail", "extractor": None, "ground_truth_column": "highlights",
        "score": score, "unit_samples": samples, "num_repeats": 1, "total_samples": samples,
        "duration_s": duration_s, "complete": True, "dataset_type": "accuracy"}]}


def _readme(scenario: str, point: SweepPoint, software: str) -> str:
    return "\n".join([
        f"# Llama-3.1-8B {scenario}", "",
        f"Measured with client_sut ({software}): MLCommons LoadGen drives an async streaming "
        f"client against OpenAI-compatible servers.", "",
        f"`performance/` and `config.yaml` are the sweep's point `{point.name}` "
        f"({point.kind}, {point.requests} requests over {point.duration_s} s); "
        f"`accuracy/` is the sweep's accuracy run (Offline, every sample once).", ""])


def write_v61(target: EmitTarget, output_dir: Path, points: Sequence[SweepPoint],
              accuracy: Mapping, accuracy_wall_s: float) -> dict:
    """Lays the folder out, runs the checker when there is one; the report for sweep.json."""
    layout = Layout(output_dir / V61_FOLDER, target.division, target.submitter, target.system_id)
    if layout.org.exists():
        shutil.rmtree(layout.org)
    summaries = {p.name: json.loads((output_dir / p.dir / "performance" /
                                    "result_summary.json").read_text(encoding="utf-8"))
                 for p in points if not p.failed and p.dir}
    by_name = {p.name: p for p in points}
    picked = pick_scenarios([candidate(name, by_name[name].kind, summary)
                             for name, summary in summaries.items()])
    write_json(layout.system_json, target.system)
    write_source(layout.src)
    software = probe.software_stack()
    findings = []
    for scenario, name in picked.items():
        folder = layout.scenario(scenario)
        (folder / "performance").mkdir(parents=True)
        shutil.copy2(output_dir / name / "config.yaml", folder / "config.yaml")
        shutil.copy2(output_dir / name / "performance" / "result_summary.json",
                     folder / "performance" / "result_summary.json")
        write_json(folder / "accuracy" / "accuracy_results.json",
                   accuracy_results(accuracy, accuracy_wall_s))
        write_json(folder / "measurements.json", target.measurements)
        (folder / "README.md").write_text(_readme(scenario, by_name[name], software),
                                          encoding="utf-8")
        findings += missed_by_checker(scenario, summaries[name], accuracy)
    report = {"folder": str(layout.org), "scenarios": picked, "official_checker": None,
              "extra_checks": {"passed": not findings, "findings": findings},
              "notes": list(CHECKER_NOTES)}
    if target.checker is not None:
        skip_size = accuracy["gen_num"] != DATASET_SAMPLES
        verdict = run_checker(target.checker, layout.root, target.submitter,
                              output_dir / "endpoints-v61-checker.log",
                              output_dir / "endpoints-v61-checker.csv", skip_size)
        report["official_checker"] = {"passed": verdict.passed, "exit_status": verdict.returncode,
                                      "errors": list(verdict.errors), "log": str(verdict.log),
                                      "skip_dataset_size_check": skip_size}
    report["passed"] = not findings and bool(report["official_checker"]
                                             and report["official_checker"]["passed"])
    return report


def write_v1(target: EmitTarget, output_dir: Path, points: Sequence[SweepPoint],
             dataset_samples: int, accuracy: Mapping | None, accuracy_wall_s: float) -> dict:
    """Lays the v1.0 bundle out; the report for sweep.json."""
    root = output_dir / V1_FOLDER / target.submitter / SUBMISSION_ID
    if root.exists():
        shutil.rmtree(root)
    curve = [p for p in points if not p.failed and p.dir and p.kind in (CONCURRENCY, OFFLINE)]
    labels = region_labels(curve)
    highest = max((p.concurrency for p in curve if p.concurrency), default=0)
    write_source(root / "src" / "client_sut")
    seeds: dict = {}
    folders = {}
    for point in curve:
        source = output_dir / point.dir
        folder = root / "results" / target.system_id / "llama3.1-8b" / folder_name(
            point, dataset_samples)
        folder.mkdir(parents=True)
        shutil.copy2(source / "performance" / "result_summary.json", folder)
        shutil.copy2(source / "config.yaml", folder)
        write_json(folder / "system_desc.json", target.system)
        config = yaml.safe_load((source / "config.yaml").read_text(encoding="utf-8"))
        seeds = {k: v for k, v in config["settings"]["runtime"].items() if k.endswith("_seed")}
        run = json.loads((source / "results.json").read_text(encoding="utf-8"))
        described = point_yaml(point, labels[point.name], seeds, run.get("warmup"),
                               highest, dataset_samples,
                               str(target.measurements.get("weight_data_types", "")))
        (folder / "point.yaml").write_text(yaml.safe_dump(described, sort_keys=False),
                                           encoding="utf-8")
        if point.kind == OFFLINE and accuracy is not None:
            write_json(folder / "accuracy_results.json",
                       accuracy_results(accuracy, accuracy_wall_s))
        folders[point.name] = folder.name
    findings = v1_findings(curve, labels, seeds, dataset_samples, DATASET_SAMPLES,
                           "Offline, every sample once" if accuracy is not None else None)
    return {"folder": str(root), "points": folders, "regions": labels,
            "extra_checks": {"passed": not findings, "findings": findings},
            "passed": not findings}
