"""`client-sut submission`: check the inputs, make or find the runs, assemble, check, report.

Every input is checked before a run is made or a file is copied: the division and scenarios,
the checker's checkout, the user's system file (with what the tool sees, every required field
must have an answer), the user.conf, the run options. Exit status: 0 when MLCommons' checker
accepts the folder and every extra check passes, 1 when either does not, 2 on bad input, 3
when a server stopped answering while the runs were made (they stop; those made are kept).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from client_sut.config import Scenario, parse_choice
from client_sut.errors import EXIT_FAILED, EXIT_OK, UsageError
from client_sut.runs.server_guard import ServerGuard
from client_sut.runs.settings import check_user_conf, default_user_conf
from client_sut.security import Credentials
from client_sut.submission import probe
from client_sut.submission.assemble import assemble
from client_sut.submission.checker import run_checker, tools_dir
from client_sut.submission.folder import check_folder
from client_sut.submission.checks import failed_runs
from client_sut.submission.layout import DIVISIONS, RUN_KINDS, Layout
from client_sut.submission.runs import (
    check_run_args,
    incomplete_runs,
    make_runs,
    plan_runs,
    run_results,
)
from client_sut.submission.system import (
    measurements,
    read_user_description,
    sources,
    system_description,
)

SUBMISSION_SCENARIOS = (Scenario.OFFLINE, Scenario.SERVER, Scenario.INTERACTIVE)
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class SubmissionConfig:
    system_file: Path
    checker: Path  # a checkout of mlcommons/inference
    output_dir: Path = Path("results/submission")
    division: str = "closed"
    scenarios: tuple[str, ...] = ("Offline", "Server")
    runs: Path | None = None  # default: output_dir/runs
    user_conf: Path | None = None
    run_args: tuple[str, ...] = ()  # given: make the runs with these `client-sut run` options
    endpoints: tuple[str, ...] = ()  # the servers the runs are made against (from run_args)
    credentials: Credentials = Credentials()  # how to reach them (from run_args)
    skip_dataset_size_check: bool = False


@dataclass(frozen=True, slots=True)
class SubmissionOutcome:
    report: dict
    exit_status: int


def _scenarios(names: tuple[str, ...]) -> list[str]:
    chosen = [parse_choice(Scenario, name, "--scenario") for name in names]
    unsupported = [s.value for s in chosen if s not in SUBMISSION_SCENARIOS]
    if unsupported:
        raise UsageError(f"--scenario {unsupported[0]} is not part of the Llama-3.1-8B datacenter "
                         f"submission; choose among Offline, Server, Interactive")
    return list(dict.fromkeys(s.value for s in chosen))


def _endpoints(config: SubmissionConfig, runs: Path, scenarios: list[str]) -> list[str]:
    """The servers to describe: those the runs will be made against, else those they were."""
    if config.endpoints or config.run_args:
        return list(config.endpoints)
    urls = {endpoint["url"] for scenario in scenarios
            for endpoint in run_results(runs, scenario, "performance").get("endpoints", [])}
    return sorted(urls)


def make_submission(config: SubmissionConfig, progress: Progress) -> SubmissionOutcome:
    if config.division not in DIVISIONS:
        raise UsageError(f"--division {config.division!r} is not one of {', '.join(DIVISIONS)}")
    scenarios = _scenarios(config.scenarios)
    tools_dir(config.checker)
    user = read_user_description(config.system_file)
    # One user.conf for every run when given; else the shipped one of each scenario.
    user_confs = {s: (config.user_conf or default_user_conf(Scenario(s))).resolve()
                  for s in scenarios}
    for user_conf in set(user_confs.values()):
        check_user_conf(user_conf)
    check_run_args(config.run_args)
    runs = config.runs or config.output_dir / "runs"
    making = bool(config.run_args)
    if not making and (missing := incomplete_runs(runs, scenarios)):
        raise UsageError(f"{len(missing)} run files missing, e.g. {missing[0]}; make the runs "
                         f"(options after `--`) or pass --runs with the folder holding them")
    config.output_dir.mkdir(parents=True, exist_ok=True)
    seen_system, seen_measurements = probe.detected(_endpoints(config, runs, scenarios),
                                                    config.output_dir)
    if not making and not seen_measurements["starting_weights_filename"]:
        # The servers are gone; the runs name the model they measured.
        seen_measurements["starting_weights_filename"] = ", ".join(sorted(
            {run_results(runs, s, "performance")["model"] for s in scenarios}))
    system = system_description(seen_system, user, config.division)
    measured = measurements(seen_measurements, user)
    if "/" in str(system["submitter"]):
        raise UsageError(f"submitter {system['submitter']!r} names a folder: drop the '/'")

    specs = plan_runs(scenarios, runs, config.run_args, user_confs) if making else []
    make_runs(specs, progress, ServerGuard(config.endpoints, config.credentials, None, progress))
    if missing := incomplete_runs(runs, scenarios):
        raise UsageError(f"the runs left {len(missing)} things missing, e.g. {missing[0]}")

    layout = Layout(config.output_dir / "submission", config.division, str(system["submitter"]),
                    user.system_id)
    progress(f"assembling {layout.org}")
    commands = {s: [spec.shown() for spec in specs if spec.scenario == s] for s in scenarios}
    assemble(layout, runs, scenarios, system, measured, user_confs, commands,
             probe.software_stack())
    progress("running MLCommons' submission checker")
    verdict = run_checker(config.checker, layout.root, layout.submitter,
                          config.output_dir / "checker.log",
                          config.output_dir / "checker_summary.csv",
                          config.skip_dataset_size_check)
    eos = run_results(runs, scenarios[0], "TEST06")["audit"].get("eos_token_id")
    # Failed requests first: the runs did not measure the deployment.
    findings = failed_runs({(s, kind): run_results(runs, s, kind) for s in scenarios
                            for kind in RUN_KINDS}) + check_folder(layout, eos)
    report = {
        "folder": str(layout.org),
        "division": config.division,
        "scenarios": scenarios,
        "official_checker": {"passed": verdict.passed, "exit_status": verdict.returncode,
                             "errors": list(verdict.errors), "log": str(verdict.log),
                             "skip_dataset_size_check": config.skip_dataset_size_check},
        "extra_checks": {"passed": not findings, "findings": [asdict(f) for f in findings],
                         "eos_token_id": eos},
        "system_fields": sources(seen_system, user, system),
        "passed": verdict.passed and not findings,
    }
    (config.output_dir / "submission.json").write_text(json.dumps(report, indent=2) + "\n",
                                                       encoding="utf-8")
    return SubmissionOutcome(report, EXIT_OK if report["passed"] else EXIT_FAILED)


def report_lines(report: dict, path: Path) -> list[str]:
    checker, extra = report["official_checker"], report["extra_checks"]
    lines = [f"submission {report['folder']} ({report['division']}: "
             f"{', '.join(report['scenarios'])})",
             f"  MLCommons checker: {'accepted' if checker['passed'] else 'REJECTED'} "
             f"(log {checker['log']})"]
    lines += [f"    {error}" for error in checker["errors"]]
    lines.append(f"  extra checks: {'passed' if extra['passed'] else 'FAILED'}")
    lines += [f"    {f['scenario']} {f['check']}: {f['message']}" for f in extra["findings"]]
    detected = sorted(k for k, v in report["system_fields"].items() if v == "detected")
    lines.append(f"  system fields seen on this host or its servers: {', '.join(detected)} "
                 f"(set them in the system file if the servers run elsewhere)")
    lines.append(f"  report: {path}")
    return lines
