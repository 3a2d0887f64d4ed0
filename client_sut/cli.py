"""`client-sut`: parses the command line and delegates. No logic lives here."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from client_sut import __version__
from client_sut.config import Mode, PromptForm, RunConfig, Scenario, normalise_endpoint, parse_choice
from client_sut.accuracy import DTYPES, TARGETS
from client_sut.audit import AUDITS
from client_sut.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError
from client_sut.security import DEFAULT_KEY_ENV, resolve_credentials
from client_sut.stream import Api
from client_sut.timeouts import Timeouts


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line and exit status 2, like every other bad input."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _run_parser(commands) -> None:
    run = commands.add_parser("run", help="one LoadGen run against OpenAI-compatible endpoints",
                              description="One LoadGen run: the client streams completions from "
                                          "the endpoints and reports to LoadGen.")
    run.add_argument("--endpoint", action="append", required=True, metavar="URL",
                     help="base URL of an OpenAI-compatible server; repeat for several")
    run.add_argument("--model", help="served model name (default: the first of GET /v1/models)")
    run.add_argument("--tokenizer", metavar="PATH_OR_NAME",
                     help="tokenizer for the prompts (default: the model)")
    run.add_argument("--dataset", required=True, metavar="PATH",
                     help="cnn_eval.json, a .jsonl with article/highlights or input/output, or "
                          "hf:NAME[:CONFIG[:SPLIT]]")
    run.add_argument("--scenario", default="Offline", help="Offline|Server|Interactive|SingleStream")
    run.add_argument("--mode", default="performance", help="performance|accuracy")
    run.add_argument("--target-qps", type=float, metavar="Q",
                     help="LoadGen's target QPS (Server arrival rate; Offline expected rate)")
    run.add_argument("--user-conf", type=Path, metavar="PATH",
                     help="LoadGen user.conf (default: the one shipped in loadgen_configs/)")
    run.add_argument("--total-sample-count", type=int, metavar="N",
                     help="use the first N samples of the dataset")
    run.add_argument("--api", default="completions", help="completions|chat")
    run.add_argument("--prompt-form",
                     help="tokens|text: the prompt as token ids or as text (default: tokens for "
                          "completions, text for chat)")
    run.add_argument("--max-concurrency", type=int, default=512, metavar="N",
                     help="requests in flight per endpoint (default 512)")
    run.add_argument("--output-dir", type=Path, default=Path("results/run"), metavar="DIR")
    run.add_argument("--duration", type=float, metavar="SECONDS",
                     help="LoadGen min_duration for a short, non-compliant run")
    run.add_argument("--min-query-count", type=int, metavar="N",
                     help="LoadGen min_query_count (Offline: samples issued); non-compliant")
    defaults = Timeouts()
    run.add_argument("--connect-timeout", type=float, default=defaults.connect, metavar="S")
    run.add_argument("--first-byte-timeout", type=float, default=defaults.first_byte,
                     metavar="S", help="longest wait for the response to start")
    run.add_argument("--gap-timeout", type=float, default=defaults.gap, metavar="S",
                     help="longest wait between two reads of a started response")
    run.add_argument("--request-timeout", type=float, default=defaults.total, metavar="S")
    run.add_argument("--keepalive", type=float, default=defaults.keepalive, metavar="S",
                     help="close connections idle this long; keep it under the server's "
                          "keep-alive (vLLM: 5 s)")
    run.add_argument("--api-key-env", metavar="NAME",
                     help=f"environment variable holding the API key (default: "
                          f"{DEFAULT_KEY_ENV} when set)")
    run.add_argument("--api-key-file", type=Path, metavar="PATH",
                     help="file holding the API key")
    run.add_argument("--insecure", action="store_true",
                     help="do not verify the servers' TLS certificates")
    run.add_argument("--ca-bundle", type=Path, metavar="PATH",
                     help="PEM file of CA certificates to verify the servers against")
    run.add_argument("--audit", choices=AUDITS,
                     help="a compliance test: TEST06 logs sampled responses and verifies them")
    run.add_argument("--workers", type=int, metavar="N",
                     help="processes for accuracy scoring (default: every core)")
    run.add_argument("--calibration", type=Path, metavar="PATH",
                     help="calibrate.json from `client-sut calibrate` on this machine: the run "
                          "warns when its load nears the client's measured capacity")


def _evaluate_parser(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="score an mlperf_log_accuracy.json with ROUGE, as MLPerf does",
        description="Score an MLPerf accuracy log (from any harness) against the dataset's "
                    "reference summaries; writes accuracy.json beside the log.")
    evaluate.add_argument("--accuracy-log", type=Path, required=True, metavar="PATH")
    evaluate.add_argument("--dataset", required=True, metavar="PATH",
                          help="the dataset the run used (qsl_idx = position in it)")
    evaluate.add_argument("--tokenizer", required=True, metavar="PATH_OR_NAME")
    evaluate.add_argument("--dtype", choices=sorted(DTYPES), default="int32",
                          help="token id type in the log (MLCommons' reference SUT logs int64)")
    evaluate.add_argument("--targets", choices=sorted(TARGETS), default="datacenter")
    evaluate.add_argument("--output", type=Path, metavar="PATH",
                          help="where to write accuracy.json (default: beside the log)")
    evaluate.add_argument("--workers", type=int, metavar="N",
                          help="scoring processes (default: every core)")


def _calibrate_parser(commands) -> None:
    calibrate = commands.add_parser(
        "calibrate", help="measure this machine's client capacity and timing error",
        description="Drive a built-in loopback token emitter through the real client and "
                    "LoadGen: client CPU per token, the most tokens/s and requests/s it "
                    "sustains, and its TTFT/TPOT/ITL error against what the emitter recorded.")
    calibrate.add_argument("--output-dir", type=Path, default=Path("results/calibrate"),
                           metavar="DIR", help="where calibrate.json and the runs go")
    calibrate.add_argument("--quick", action="store_true",
                           help="a small smoke test (seconds), not a measurement to rely on")


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from client_sut.calibrate import CalibrationPlan, calibrate, summary_lines

    plan = CalibrationPlan.quick() if args.quick else CalibrationPlan()
    report = calibrate(args.output_dir, plan,
                       lambda message: print(message, file=sys.stderr, flush=True))
    print("\n".join(summary_lines(report, args.output_dir / "calibrate.json")))
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from client_sut.accuracy import evaluate_file
    from client_sut.summary import print_accuracy

    result, output = evaluate_file(args.accuracy_log, args.dataset, args.tokenizer,
                                   dtype=args.dtype, category=args.targets, output=args.output,
                                   workers=args.workers)
    print_accuracy(result, output)
    return EXIT_OK if result["passed"] else EXIT_FAILED


def _run_config(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        endpoints=tuple(normalise_endpoint(url) for url in args.endpoint),
        dataset=args.dataset,
        output_dir=args.output_dir,
        scenario=parse_choice(Scenario, args.scenario, "--scenario"),
        mode=parse_choice(Mode, args.mode, "--mode"),
        model=args.model,
        tokenizer=args.tokenizer,
        target_qps=args.target_qps,
        user_conf=args.user_conf,
        total_sample_count=args.total_sample_count,
        api=parse_choice(Api, args.api, "--api"),
        prompt_form=(parse_choice(PromptForm, args.prompt_form, "--prompt-form")
                     if args.prompt_form else None),
        max_concurrency=args.max_concurrency,
        duration_s=args.duration,
        min_query_count=args.min_query_count,
        timeouts=Timeouts(args.connect_timeout, args.first_byte_timeout, args.gap_timeout,
                          args.request_timeout, args.keepalive),
        audit=args.audit,
        credentials=resolve_credentials(key_env=args.api_key_env, key_file=args.api_key_file,
                                        insecure=args.insecure, ca_bundle=args.ca_bundle),
        workers=args.workers,
        calibration=args.calibration,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from client_sut.runner import execute
    from client_sut.summary import print_run_summary

    outcome = execute(_run_config(args))
    print_run_summary(outcome.results, outcome.output_dir)
    if outcome.loadgen_running:
        # LoadGen keeps a Server schedule and cannot be stopped; what was measured is written.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(outcome.exit_status)
    return outcome.exit_status


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="client-sut", description="MLPerf-grade benchmark client for LLM "
                                                     "deployments (Llama-3.1-8B, CNN/DailyMail).")
    parser.add_argument("--version", action="version", version=f"client-sut {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _run_parser(commands)
    _evaluate_parser(commands)
    _calibrate_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"run": _cmd_run, "evaluate": _cmd_evaluate, "calibrate": _cmd_calibrate}
    try:
        return handlers[args.command](args)
    except UsageError as exc:
        print(f"client-sut {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the run started (a run handles its own signals)
        print(f"client-sut {args.command}: interrupted before anything was measured",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
