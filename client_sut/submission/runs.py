"""The LoadGen runs a submission is made from: per scenario a performance run, an accuracy run
and TEST06, each a child `client-sut run` process (LoadGen takes one configuration per process),
into `runs/<Scenario>/<kind>/`."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from client_sut.errors import EXIT_INTERRUPTED, EXIT_USAGE, RunStopped, UsageError
from client_sut.runs.server_guard import ServerGuard
from client_sut.submission.layout import RUN_KINDS, run_dir

# The submission sets these itself, per run.
RESERVED_RUN_FLAGS = ("--scenario", "--mode", "--audit", "--output-dir", "--user-conf")
KIND_FLAGS = {"performance": ("--mode", "performance"), "accuracy": ("--mode", "accuracy"),
              "TEST06": ("--audit", "TEST06")}
# What each kind of run must have left behind to be assembled.
REQUIRED_FILES = {
    "performance": ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "results.json"),
    "accuracy": ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json",
                 "results.json"),
    "TEST06": ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json",
               "results.json"),
}


@dataclass(frozen=True, slots=True)
class RunSpec:
    scenario: str
    kind: str
    output_dir: Path
    args: tuple[str, ...]

    def command(self) -> list[str]:
        return [sys.executable, "-m", "client_sut", "run", *self.args,
                "--output-dir", str(self.output_dir)]

    def shown(self) -> str:
        """The command as a user would type it (for the measurements README)."""
        return shlex.join(["client-sut", "run", *self.args, "--output-dir", str(self.output_dir)])


def check_run_args(run_args: Sequence[str]) -> None:
    reserved = [arg for arg in run_args if arg.split("=", 1)[0] in RESERVED_RUN_FLAGS]
    if reserved:
        raise UsageError(f"{', '.join(reserved)} after `--` is set by `submission` itself "
                         f"(use --scenario, --user-conf of `submission`); drop it")


def plan_runs(scenarios: Sequence[str], runs: Path, run_args: Sequence[str],
              user_confs: Mapping[str, Path]) -> list[RunSpec]:
    return [RunSpec(scenario, kind, run_dir(runs, scenario, kind),
                    (*run_args, "--user-conf", str(user_confs[scenario]), "--scenario", scenario,
                     *KIND_FLAGS[kind]))
            for scenario in scenarios for kind in RUN_KINDS]


def make_runs(specs: Sequence[RunSpec], progress: Callable[[str], None],
              guard: ServerGuard) -> None:
    """Each run in turn. A run that finishes INVALID or failing is kept (the checks judge it);
    bad input stops everything, as does an interrupt, and so does a server that stopped
    answering (RunStopped: before the next run, the runs made so far kept)."""
    for number, spec in enumerate(specs, start=1):
        during = f"run {number}/{len(specs)} ({spec.scenario} {spec.kind})"
        if number > 1:  # the first run's own checks say best what is wrong with an endpoint
            guard.before(during)
        progress(f"run {number}/{len(specs)}: {spec.scenario} {spec.kind}")
        status = subprocess.run(spec.command(), check=False, stdout=sys.stderr).returncode
        if status == EXIT_USAGE:
            raise UsageError(f"`{spec.shown()}` was refused (exit 2): fix the run options "
                             f"after `--`")
        if status == EXIT_INTERRUPTED:
            raise KeyboardInterrupt
        results_path = spec.output_dir / "results.json"
        results = json.loads(results_path.read_text(encoding="utf-8")) \
            if results_path.is_file() else None
        lost = guard.lost(results, status, during)
        if lost is not None:
            raise RunStopped(f"{lost}; the submission stops, the runs made so far are kept in "
                             f"{spec.output_dir.parent.parent}", during)
        if results is None:
            raise UsageError(f"`{spec.shown()}` ended with status {status} and wrote no "
                             f"results.json: see its messages above")


# The verdict each kind of run must have written into its results.json.
REQUIRED_RESULTS = {"accuracy": "accuracy", "TEST06": "audit"}


def incomplete_runs(runs: Path, scenarios: Sequence[str]) -> list[str]:
    """What is missing from the runs, before anything is copied: files, then verdicts."""
    missing = [str(run_dir(runs, scenario, kind) / name) for scenario in scenarios
               for kind in RUN_KINDS for name in REQUIRED_FILES[kind]
               if not (run_dir(runs, scenario, kind) / name).is_file()]
    if missing:
        return missing
    return [f"{run_dir(runs, scenario, kind) / 'results.json'} has no {section!r} (the run was "
            f"interrupted or not made with {' '.join(KIND_FLAGS[kind])})"
            for scenario in scenarios for kind, section in REQUIRED_RESULTS.items()
            if section not in run_results(runs, scenario, kind)]


def run_results(runs: Path, scenario: str, kind: str) -> dict:
    return json.loads((run_dir(runs, scenario, kind) / "results.json").read_text(encoding="utf-8"))
