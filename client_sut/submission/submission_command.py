"""`client-sut submission`: its flags, the folder assembled (its runs made first, where asked)
and checked."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from client_sut.config import normalise_endpoint
from client_sut.errors import UsageError
from client_sut.flags import deployment_config
from client_sut.runs.run_command import parse_run_args
from client_sut.security import Credentials

def add_parser(commands) -> None:
    submission = commands.add_parser(
        "submission", help="assemble an MLPerf submission folder and check it",
        description="Assemble the Llama-3.1-8B submission folder (v6.x layout) from performance, "
                    "accuracy and TEST06 runs, made here when `client-sut run` options follow "
                    "`--`, else read from --runs; then run MLCommons' checker on it and the "
                    "checks it does not make.")
    submission.add_argument("--system-file", type=Path, required=True, metavar="PATH",
                            help="TOML: system_id, [system] and [measurements] fields the tool "
                                 "cannot see (submitter, system_name, status, cooling...)")
    submission.add_argument("--checker", type=Path, metavar="DIR",
                            default=os.environ.get("MLPERF_INFERENCE_DIR"),
                            help="a checkout of github.com/mlcommons/inference (default: "
                                 "$MLPERF_INFERENCE_DIR)")
    submission.add_argument("--division", default="closed", help="closed|open")
    submission.add_argument("--scenario", action="append", metavar="NAME",
                            help="Offline, Server or Interactive; repeat (default: Offline and "
                                 "Server)")
    submission.add_argument("--output-dir", type=Path, default=Path("results/submission"),
                            metavar="DIR", help="the folder (submission/), the runs (runs/) and "
                                                "the checks' reports go here")
    submission.add_argument("--runs", type=Path, metavar="DIR",
                            help="the runs as <Scenario>/{performance,accuracy,TEST06}/ "
                                 "(default: OUTPUT_DIR/runs)")
    submission.add_argument("--user-conf", type=Path, metavar="PATH",
                            help="LoadGen user.conf of every run (default: the shipped one of "
                                 "each scenario)")
    submission.add_argument("--skip-dataset-size-check", action="store_true",
                            help="passed to the checker: accuracy runs on a subset of CNN/DM")
    submission.add_argument("run_args", nargs="*", metavar="-- RUN_OPTIONS",
                            help="`client-sut run` options (--endpoint, --dataset, "
                                 "--target-qps...): make the runs with them")
    submission.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from client_sut.preflight.discovery import read_endpoints_file
    from client_sut.submission.command import (
        SubmissionConfig,
        make_submission,
        report_lines,
    )

    if args.checker is None:
        raise UsageError("no checker: pass --checker with a checkout of "
                         "github.com/mlcommons/inference (or set MLPERF_INFERENCE_DIR)")
    run_args = parse_run_args(args.run_args) if args.run_args else None
    config = SubmissionConfig(
        system_file=args.system_file, checker=args.checker, output_dir=args.output_dir,
        division=args.division, scenarios=tuple(args.scenario or ("Offline", "Server")),
        runs=args.runs, user_conf=args.user_conf, run_args=tuple(args.run_args),
        # The servers to ask for their vLLM version and model (names to resolve are skipped).
        endpoints=tuple(normalise_endpoint(url) for url in [
            *run_args.endpoint, *(listed for path in run_args.endpoints_file
                                  for listed in read_endpoints_file(path))]
            if url.startswith(("http://", "https://"))) if run_args else (),
        credentials=deployment_config(run_args, args.output_dir).credentials if run_args
        else Credentials(),
        skip_dataset_size_check=args.skip_dataset_size_check)
    outcome = make_submission(config, lambda line: print(line, file=sys.stderr, flush=True))
    print("\n".join(report_lines(outcome.report, args.output_dir / "submission.json")))
    return outcome.exit_status
