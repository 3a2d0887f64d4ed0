"""`client-sut run`: its flags, and one run made, reported and summed up."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from client_sut.accuracy.audit import AUDITS
from client_sut.config import Mode, ProgressMode, RunConfig, Scenario, parse_choice
from client_sut.errors import EXIT_INTERRUPTED
from client_sut.flags import (
    Parser,
    deployment_config,
    deployment_flags,
    limit_flags,
    limits_of,
)

def add_parser(commands) -> None:
    run = commands.add_parser("run", help="one LoadGen run against OpenAI-compatible endpoints",
                              description="One LoadGen run: the client streams completions from "
                                          "the endpoints and reports to LoadGen.")
    deployment_flags(run)
    run.add_argument("--scenario", default="Offline",
                     help="Offline|Server|Interactive|SingleStream")
    run.add_argument("--mode", default="performance", help="performance|accuracy")
    run.add_argument("--target-qps", type=float, metavar="Q",
                     help="LoadGen's target QPS (Server arrival rate; Offline expected rate)")
    run.add_argument("--output-dir", type=Path, default=Path("results/run"), metavar="DIR")
    run.add_argument("--duration", type=float, metavar="SECONDS",
                     help="LoadGen min_duration for a short, non-compliant run")
    run.add_argument("--min-query-count", type=int, metavar="N",
                     help="LoadGen min_query_count (Offline: samples issued); non-compliant")
    limit_flags(run)
    run.add_argument("--stop-when-sla-fails", action="store_true",
                     help="Server/Interactive: end the run once its p99 limits are proven "
                          "broken (the verdict can no longer change)")
    run.add_argument("--no-equal-issue", action="store_true",
                     help="issue exactly the queries asked for, not padded to a multiple of the "
                          "sample count as LoadGen's equal-issue mode does (non-compliant)")
    run.add_argument("--token-cache", type=Path, metavar="PATH",
                     help="keep the tokenized prompts in this file and reuse them when dataset, "
                          "tokenizer and sample count match")
    run.add_argument("--audit", choices=AUDITS,
                     help="a compliance test: TEST06 logs sampled responses and verifies them")
    run.add_argument("--reference", type=Path, metavar="PATH",
                     help="accuracy mode: judge against this reference implementation's "
                          "outputs (client-sut reference) instead of the published targets")
    run.add_argument("--scoring-workers", type=int, metavar="N",
                     help="processes for accuracy scoring (default: every core)")
    run.add_argument("--progress", default="auto",
                     help="auto|live|plain|none: a live view on a terminal, a line every 10 s "
                          "otherwise (default auto)")
    run.add_argument("--no-report", action="store_true",
                     help="do not write report.html at the end")
    run.add_argument("--no-server-metrics", action="store_true",
                     help="do not scrape the servers' /metrics during the run")
    run.set_defaults(handler=main)


def run_config(args: argparse.Namespace) -> RunConfig:
    scenario = parse_choice(Scenario, args.scenario, "--scenario")
    return replace(
        deployment_config(args, args.output_dir),
        scenario=scenario,
        mode=parse_choice(Mode, args.mode, "--mode"),
        target_qps=args.target_qps,
        duration_s=args.duration,
        min_query_count=args.min_query_count,
        limits=limits_of(args, scenario),
        stop_when_sla_fails=args.stop_when_sla_fails,
        token_cache=args.token_cache,
        equal_issue=not args.no_equal_issue,
        audit=args.audit,
        scoring_workers=args.scoring_workers,
        reference=args.reference,
        progress=parse_choice(ProgressMode, args.progress, "--progress"),
        server_metrics=not args.no_server_metrics,
    )


def main(args: argparse.Namespace) -> int:
    from client_sut.runs.runner import execute
    from client_sut.runs.summary import print_run_summary

    outcome = execute(run_config(args))
    status = outcome.exit_status
    if outcome.results["interrupted"] and not args.no_report:  # the user wants out: at once
        print(f"report.html not written (interrupted); `client-sut report "
              f"{outcome.output_dir}` makes it", file=sys.stderr)
    elif not args.no_report:
        from client_sut.report import report_after_run

        try:
            report_after_run([outcome.output_dir], outcome.output_dir,
                             lambda message: print(message, file=sys.stderr, flush=True))
        except KeyboardInterrupt:  # the results are written; only the report is skipped
            print("interrupted: report.html not written", file=sys.stderr)
            status = EXIT_INTERRUPTED
    print_run_summary(outcome.results, outcome.output_dir)
    if outcome.loadgen_running:
        # LoadGen keeps a Server schedule and cannot be stopped; what was measured is written.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def parse_run_args(argv: list[str]) -> argparse.Namespace:
    """`client-sut run` options given to another command (submission's `-- RUN_OPTIONS`)."""
    parser = Parser(prog="client-sut")
    add_parser(parser.add_subparsers(dest="command", parser_class=Parser))
    return parser.parse_args(["run", *argv])
