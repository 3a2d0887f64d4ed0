"""`client-sut`: parses the command line and delegates. No logic lives here."""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

from client_sut import __version__
from client_sut.accuracy import reference_command
from client_sut.accuracy.audit import AUDITS
from client_sut.accuracy.rouge import DTYPES, TARGETS
from client_sut.config import (
    DEFAULT_WARMUP,
    OFFICIAL_LATENCY_LIMITS,
    OFFICIAL_MIN_DURATION_S,
    LatencyLimits,
    Mode,
    ProgressMode,
    PromptForm,
    PromptFormat,
    RunConfig,
    Scenario,
    check_dialect,
    normalise_endpoint,
    parse_choice,
)
from client_sut.dialect import KNOWN
from client_sut.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    RunStopped,
    UsageError,
)
from client_sut.request import Api, Timeouts
from client_sut.security import DEFAULT_KEY_ENV, Credentials, resolve_credentials


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line and exit status 2, like every other bad input."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


DEPLOYMENT_FLAGS = "the deployment"  # the flags `run` and `sla` share


def _deployment_flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """What to benchmark and how to reach it: the flags `sla` passes on to each of its runs."""
    group = parser.add_argument_group(DEPLOYMENT_FLAGS)
    group.add_argument("--endpoint", action="append", default=[], metavar="URL",
                       help="base URL of an OpenAI-compatible server; repeat for several; "
                            "dns+http://NAME:PORT means every address NAME resolves to")
    group.add_argument("--endpoints-file", type=Path, action="append", default=[],
                       metavar="PATH", help="more endpoints, one URL per line (server.launch "
                                            "--endpoints-file); repeat for several launchers")
    group.add_argument("--model", help="served model name (default: the first of GET /v1/models)")
    group.add_argument("--tokenizer", metavar="PATH_OR_NAME",
                       help="tokenizer for the prompts (default: the model)")
    group.add_argument("--dataset", required=True, metavar="PATH",
                       help="cnn_eval.json, a .jsonl with article/highlights or input/output, or "
                            "hf:NAME[:CONFIG[:SPLIT]]")
    group.add_argument("--user-conf", type=Path, metavar="PATH",
                       help="LoadGen user.conf (default: the one shipped in loadgen_configs/)")
    group.add_argument("--total-sample-count", type=int, metavar="N",
                       help="use the first N samples of the dataset")
    group.add_argument("--api", default="completions", help="completions|chat")
    group.add_argument("--prompt-form",
                       help="tokens|text: the prompt as token ids or as text (default: tokens for "
                            "completions, text for chat)")
    group.add_argument("--prompt-format", default=PromptFormat.OFFICIAL.value,
                       choices=[f.value for f in PromptFormat],
                       help="official: MLPerf's plain prompt, exact for Llama-3.1-8B (default); "
                            "chat: the same instruction as the user turn of the tokenizer's own "
                            "chat template, for a model with another chat format (not compliant)")
    group.add_argument("--dialect", metavar="NAME",
                       help=f"the servers' kind ({', '.join(KNOWN)}): what they accept and "
                            f"ignore, where a probe cannot tell (default: probed before the run)")
    group.add_argument("--max-concurrency", type=int, default=512, metavar="N",
                       help="requests in flight per endpoint (default 512)")
    group.add_argument("--workers", type=_workers, default=0, metavar="N|auto",
                       help="shard the streams over N worker processes, each with its own "
                            "event loop and a share of --max-concurrency, LoadGen staying in "
                            "this one (default 0: the streams on this process's loop; use "
                            "them when one core cannot read the tokens: see self_check); auto: "
                            "from --calibration's capacity and the rate, else a worker per "
                            "spare core")
    group.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, metavar="N",
                       help=f"untimed requests per endpoint before LoadGen starts, with prompts "
                            f"that are no dataset sample (default {DEFAULT_WARMUP}; 0: none)")
    defaults = Timeouts()
    group.add_argument("--connect-timeout", type=float, default=defaults.connect, metavar="S")
    group.add_argument("--first-byte-timeout", type=float, default=defaults.first_byte,
                       metavar="S", help="longest wait for the response to start")
    group.add_argument("--gap-timeout", type=float, default=defaults.gap, metavar="S",
                       help="longest wait between two reads of a started response")
    group.add_argument("--request-timeout", type=float, default=defaults.total, metavar="S")
    group.add_argument("--keepalive", type=float, default=defaults.keepalive, metavar="S",
                       help="close connections idle this long; keep it under the server's "
                            "keep-alive (vLLM: 5 s)")
    group.add_argument("--api-key-env", metavar="NAME",
                       help=f"environment variable holding the API key (default: "
                            f"{DEFAULT_KEY_ENV} when set)")
    group.add_argument("--api-key-file", type=Path, metavar="PATH",
                       help="file holding the API key")
    group.add_argument("--insecure", action="store_true",
                       help="do not verify the servers' TLS certificates")
    group.add_argument("--ca-bundle", type=Path, metavar="PATH",
                       help="PEM file of CA certificates to verify the servers against")
    group.add_argument("--calibration", type=Path, metavar="PATH",
                       help="calibrate.json from `client-sut calibrate` on this machine: a run "
                            "warns when its load nears the client's measured capacity")
    group.add_argument("--gpu-metrics", metavar="URL",
                       help="a DCGM exporter's /metrics (GPUs on another host), sampled during "
                            "the run into results.json system.gpus")
    return group._group_actions


def _workers(value: str) -> int | str:
    """A count of worker processes, or auto (passed on as given to each run of a search)."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of processes or auto") \
            from None


def _limit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ttft-limit-ms", type=float, metavar="MS",
                        help="p99 TTFT limit instead of the official one (non-compliant)")
    parser.add_argument("--tpot-limit-ms", type=float, metavar="MS",
                        help="p99 TPOT limit instead of the official one (non-compliant)")


def _run_parser(commands) -> None:
    run = commands.add_parser("run", help="one LoadGen run against OpenAI-compatible endpoints",
                              description="One LoadGen run: the client streams completions from "
                                          "the endpoints and reports to LoadGen.")
    _deployment_flags(run)
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
    _limit_flags(run)
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


def _sla_parser(commands) -> None:
    sla = commands.add_parser(
        "sla", help="the highest load served within the p99 latency limits, confirmed VALID",
        description="Search the highest Server (or Interactive) target QPS that LoadGen calls "
                    "VALID, then confirm it with a run of the official duration. Writes "
                    "DIR/sla.json and one run folder per probe.")
    sla.set_defaults(deployment_flags=_deployment_flags(sla))
    sla.add_argument("--scenario", default="Server", help="Server|Interactive")
    _limit_flags(sla)
    sla.add_argument("--probe-duration", type=float, default=30.0,
                     metavar="S", help="least duration of a search probe (default %(default)g s; "
                                       "a probe also runs at least 505 queries)")
    sla.add_argument("--confirm-duration", type=float, default=float(OFFICIAL_MIN_DURATION_S),
                     metavar="S", help="duration of the confirmation run (default: the official "
                                       "%(default)g s)")
    sla.add_argument("--tolerance", type=float, default=0.03, metavar="R",
                     help="stop when the highest pass and lowest fail are within this relative "
                          "distance (default %(default)g)")
    sla.add_argument("--max-probes", type=int, default=12, metavar="N",
                     help="most search probes, repeats included (default %(default)d)")
    sla.add_argument("--start-qps", type=float, metavar="Q",
                     help="first rate to probe (default: 0.75 x a short Offline run's samples/s)")
    sla.add_argument("--from-sweep", type=Path, metavar="DIR",
                     help="start from the rate the curve of `client-sut sweep` in DIR predicts "
                          "for the limits (where its p99s reach them)")
    sla.add_argument("--wait-for-server", type=float, metavar="S",
                     help="when a server stops answering during a probe, wait up to S seconds "
                          "for it to answer /health again (a restart), then repeat the probe "
                          "(default: the search stops, exit status 3)")
    sla.add_argument("--output-dir", type=Path, default=Path("results/sla"), metavar="DIR")
    sla.add_argument("--no-report", action="store_true",
                     help="do not write report.html at the end")


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
    evaluate.add_argument("--reference", type=Path, metavar="PATH",
                          help="judge against this reference implementation's outputs "
                               "(client-sut reference) instead of --targets: each ROUGE at "
                               "least 99%% of the reference's, gen_len within 90-110%%")
    evaluate.add_argument("--output", type=Path, metavar="PATH",
                          help="where to write accuracy.json (default: beside the log)")
    evaluate.add_argument("--workers", type=int, metavar="N",
                          help="scoring processes (default: every core)")


def _endpoints_parser(commands) -> None:
    endpoints = commands.add_parser(
        "endpoints", help="list the servers the client finds (and wait for them)",
        description="Resolve --endpoint (dns+http://NAME:PORT: every address of NAME) and "
                    "--endpoints-file into the servers a run would drive, one URL per line.")
    endpoints.add_argument("--endpoint", action="append", default=[], metavar="URL")
    endpoints.add_argument("--endpoints-file", type=Path, action="append", default=[],
                           metavar="PATH")
    endpoints.add_argument("--expect", type=int, metavar="N",
                           help="wait until N servers are found and every one answers /health")
    endpoints.add_argument("--wait", type=float, default=900.0, metavar="SECONDS",
                           help="with --expect: how long to wait for them (default 900)")
    endpoints.add_argument("--describe", action="store_true",
                           help="probe each server (one short request): its kind, what it "
                                "accepts of the client's request and where it puts ids and usage")
    endpoints.add_argument("--model", help="with --describe: the served model (default: the "
                                           "first of GET /v1/models)")
    endpoints.add_argument("--api", default="completions", help="with --describe: "
                                                                "completions|chat")
    endpoints.add_argument("--dialect", metavar="NAME",
                           help="with --describe: the servers' kind, as a run would be told")
    endpoints.add_argument("--api-key-env", metavar="NAME")
    endpoints.add_argument("--api-key-file", type=Path, metavar="PATH")
    endpoints.add_argument("--insecure", action="store_true")
    endpoints.add_argument("--ca-bundle", type=Path, metavar="PATH")


def _cmd_endpoints(args: argparse.Namespace) -> int:
    from client_sut.measure.discovery import (
        discover,
        endpoint_origins,
        wait_for_endpoints,
    )

    specs = [normalise_endpoint(url) for url in args.endpoint]
    if args.expect is None:
        found = discover(specs, args.endpoints_file)
    else:
        found = wait_for_endpoints(specs, args.endpoints_file, args.expect, args.wait,
                                   lambda message: print(message, file=sys.stderr, flush=True))
    if not args.describe:
        for url, origin in endpoint_origins(found).items():
            print(f"{url}\t{origin['found_by']}\t{origin['reached']}")
        return EXIT_OK
    from client_sut.measure.dialect_probe import describe_endpoints

    credentials = resolve_credentials(key_env=args.api_key_env, key_file=args.api_key_file,
                                      insecure=args.insecure, ca_bundle=args.ca_bundle)
    print("\n".join(describe_endpoints(
        tuple(e.url for e in found), args.model, parse_choice(Api, args.api, "--api"),
        credentials, check_dialect(args.dialect))))
    return EXIT_OK


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
    calibrate.add_argument("--workers", type=int, default=0, metavar="N",
                           help="measure the client with its streams over N worker processes, "
                                "as `run --workers N` runs (default 0)")


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from client_sut.runs.calibrate import CalibrationPlan, calibrate, summary_lines

    plan = replace(CalibrationPlan.quick() if args.quick else CalibrationPlan(),
                   workers=args.workers)
    report = calibrate(args.output_dir, plan,
                       lambda message: print(message, file=sys.stderr, flush=True))
    print("\n".join(summary_lines(report, args.output_dir / "calibrate.json")))
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from client_sut.accuracy.evaluate import evaluate_file
    from client_sut.runs.summary import print_accuracy

    result, output = evaluate_file(args.accuracy_log, args.dataset, args.tokenizer,
                                   dtype=args.dtype, category=args.targets, output=args.output,
                                   workers=args.workers, reference_path=args.reference)
    print_accuracy(result, output)
    return EXIT_OK if result["passed"] else EXIT_FAILED


def _deployment_config(args: argparse.Namespace, output_dir: Path) -> RunConfig:
    return RunConfig(
        endpoints=tuple(normalise_endpoint(url) for url in args.endpoint),
        endpoints_files=tuple(args.endpoints_file),
        dataset=args.dataset,
        output_dir=output_dir,
        model=args.model,
        tokenizer=args.tokenizer,
        user_conf=args.user_conf,
        total_sample_count=args.total_sample_count,
        api=parse_choice(Api, args.api, "--api"),
        prompt_form=(parse_choice(PromptForm, args.prompt_form, "--prompt-form")
                     if args.prompt_form else None),
        prompt_format=PromptFormat(args.prompt_format),
        max_concurrency=args.max_concurrency,
        client_workers=None if args.workers == "auto" else args.workers,
        warmup=args.warmup,
        timeouts=Timeouts(args.connect_timeout, args.first_byte_timeout, args.gap_timeout,
                          args.request_timeout, args.keepalive),
        credentials=resolve_credentials(key_env=args.api_key_env, key_file=args.api_key_file,
                                        insecure=args.insecure, ca_bundle=args.ca_bundle),
        calibration=args.calibration,
        gpu_metrics=args.gpu_metrics,
        dialect=args.dialect,
    )


def _official_limits(scenario: Scenario) -> LatencyLimits:
    """mlperf.conf's p99 limits; none (NaN) for scenarios without them, which checks reject."""
    return OFFICIAL_LATENCY_LIMITS.get(scenario, LatencyLimits(math.nan, math.nan))


def _limits(args: argparse.Namespace, scenario: Scenario) -> LatencyLimits | None:
    """The command line's limits, the official ones filling whichever is not given."""
    if args.ttft_limit_ms is None and args.tpot_limit_ms is None:
        return None
    official = _official_limits(scenario)
    return LatencyLimits(official.ttft_ms if args.ttft_limit_ms is None else args.ttft_limit_ms,
                         official.tpot_ms if args.tpot_limit_ms is None else args.tpot_limit_ms)


def _run_config(args: argparse.Namespace) -> RunConfig:
    scenario = parse_choice(Scenario, args.scenario, "--scenario")
    return replace(
        _deployment_config(args, args.output_dir),
        scenario=scenario,
        mode=parse_choice(Mode, args.mode, "--mode"),
        target_qps=args.target_qps,
        duration_s=args.duration,
        min_query_count=args.min_query_count,
        limits=_limits(args, scenario),
        stop_when_sla_fails=args.stop_when_sla_fails,
        token_cache=args.token_cache,
        equal_issue=not args.no_equal_issue,
        audit=args.audit,
        scoring_workers=args.scoring_workers,
        reference=args.reference,
        progress=parse_choice(ProgressMode, args.progress, "--progress"),
        server_metrics=not args.no_server_metrics,
    )


def _passed_on(args: argparse.Namespace) -> tuple[str, ...]:
    """The deployment flags as given, to hand on to each run of a search."""
    argv: list[str] = []
    for action in args.deployment_flags:
        value = getattr(args, action.dest)
        if value is None or value == action.default:
            continue
        flag = action.option_strings[0]
        if action.nargs == 0:  # a switch
            argv.append(flag)
        else:
            argv += [item for one in (value if isinstance(value, list) else [value])
                     for item in (flag, str(one))]
    return tuple(argv)


def _cmd_sla(args: argparse.Namespace) -> int:
    from client_sut.config import validate
    from client_sut.measure.discovery import discover
    from client_sut.sla.command import SlaPlan, answer_line, run_search, start_from_sweep

    scenario = parse_choice(Scenario, args.scenario, "--scenario")
    limits = _limits(args, scenario)
    if args.from_sweep and args.start_qps:
        raise UsageError("give --start-qps or --from-sweep, not both")
    start_qps, start_rule = args.start_qps, "--start-qps"
    if args.from_sweep:
        start_qps, start_rule = start_from_sweep(args.from_sweep,
                                                 limits or _official_limits(scenario))
    # Everything checkable here is checked before any run: flags, credentials, the folder.
    deployment = validate(replace(_deployment_config(args, args.output_dir), scenario=scenario,
                                  limits=limits))
    found = discover(deployment.endpoints, deployment.endpoints_files)
    plan = SlaPlan(scenario=scenario,
                   limits=limits or _official_limits(scenario),
                   official_limits=limits is None or limits == _official_limits(scenario),
                   output_dir=args.output_dir,
                   run_args=_passed_on(args),
                   probe_duration_s=args.probe_duration, confirm_duration_s=args.confirm_duration,
                   tolerance=args.tolerance, max_probes=args.max_probes, start_qps=start_qps,
                   start_rule=start_rule, start_predicted=bool(args.from_sweep),
                   endpoints=tuple(endpoint.url for endpoint in found),
                   credentials=deployment.credentials, wait_for_server_s=args.wait_for_server)

    def say(message: str) -> None:
        print(f"[sla] {message}", file=sys.stderr, flush=True)

    sla, status = run_search(plan, say)
    if not args.no_report:
        from client_sut.report import report_after_run

        report_after_run([args.output_dir], args.output_dir, say)
    print(answer_line(sla))
    if sla["self_check"]:
        warnings = sla["self_check"]["warnings"]
        print(f"  client self-check at the answer: issue lag p99 "
              f"{sla['self_check']['issue_lag_ms']['p99']} ms, event-loop lag p99 "
              f"{sla['self_check']['event_loop_lag_ms']['p99']} ms; "
              + ("; ".join(warnings) if warnings else "no warnings"))
    print(f"  {len(sla['probes'])} probes in {sla['elapsed_s']:g} s; "
          f"{args.output_dir / 'sla.json'}")
    return status


def _sweep_parser(commands) -> None:
    sweep = commands.add_parser(
        "sweep", help="the throughput-interactivity curve and its Pareto front (MLPerf "
                      "Endpoints)",
        description="One real LoadGen run per point, at fixed concurrency (the client holding "
                    "exactly C requests in flight) or at fixed Server rates, each a whole "
                    "number of passes over the dataset. Writes DIR/sweep.json and one run "
                    "folder per point. --max-concurrency C plans the points up to C by the "
                    "Endpoints regions.")
    sweep.set_defaults(deployment_flags=_deployment_flags(sweep))
    sweep.add_argument("--concurrency", type=_number_list(int), metavar="LIST",
                       help="the concurrency points, comma-separated (then an Offline point)")
    sweep.add_argument("--rates", type=_number_list(float), metavar="LIST",
                       help="Server points at these QPS instead, comma-separated")
    sweep.add_argument("--point-duration", type=float, metavar="S",
                       help="least duration of each point (default: the official 600 s in "
                            "Ultra-Low, 1,200 s elsewhere; shorter is noted as not compliant)")
    _limit_flags(sweep)
    sweep.add_argument("--output-dir", type=Path, default=Path("results/sweep"), metavar="DIR")
    sweep.add_argument("--no-report", action="store_true",
                       help="do not write report.html at the end")
    sweep.add_argument("--emit", action="append", default=[], metavar="LAYOUT",
                       help="also lay the points out for MLCommons' checkers: endpoints-v61 (the "
                            "MLPerf Inference checker's endpoints mode: adds a Server or Offline "
                            "point and an accuracy run) or endpoints-v1 (r<N>/ points)")
    sweep.add_argument("--system-file", type=Path, metavar="PATH",
                       help="the TOML file describing the system, for --emit")
    sweep.add_argument("--checker", type=Path, metavar="DIR",
                       help="a checkout of mlcommons/inference: run its checker on "
                            "endpoints-v61")
    sweep.add_argument("--division", default="closed", help="closed|open, for --emit")


def _number_list(kind):
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: "
                                             f"{text!r}") from None
    return parse


def _cmd_sweep(args: argparse.Namespace) -> int:
    from client_sut.config import validate
    from client_sut.data.dataset import load_samples
    from client_sut.measure.discovery import discover
    from client_sut.sweep.command import front_lines, run_sweep
    from client_sut.sweep.plan import SweepPlan, plan_points

    emit = tuple(dict.fromkeys(args.emit))
    points = plan_points(args.concurrency, args.max_concurrency, args.rates, emit)
    if args.point_duration is not None and not args.point_duration > 0:
        raise UsageError(f"--point-duration must be greater than 0, got {args.point_duration}")
    deployment = validate(_deployment_config(args, args.output_dir))
    found = discover(deployment.endpoints, deployment.endpoints_files)
    samples = len(load_samples(deployment.dataset, deployment.total_sample_count))
    plan = SweepPlan(points=points, output_dir=args.output_dir, run_args=_passed_on(args),
                     dataset_samples=samples,
                     limits=_limits(args, Scenario.SERVER) or _official_limits(Scenario.SERVER),
                     point_duration_s=args.point_duration, emit=emit,
                     system_file=args.system_file, checker=args.checker,
                     division=args.division,
                     endpoints=tuple(endpoint.url for endpoint in found),
                     credentials=deployment.credentials)

    def say(message: str) -> None:
        print(f"[sweep] {message}", file=sys.stderr, flush=True)

    sweep, status = run_sweep(plan, say)
    if not args.no_report:
        from client_sut.report import report_after_run

        report_after_run([args.output_dir], args.output_dir, say)
    print("\n".join(front_lines(sweep)))
    print(f"  {len(sweep['points'])} points in {sweep['elapsed_s']:g} s, {sweep['verdict']}; "
          f"front: {', '.join(sweep['front']) or 'none'}; {args.output_dir / 'sweep.json'}")
    return status


def _cmd_run(args: argparse.Namespace) -> int:
    from client_sut.runs.runner import execute
    from client_sut.runs.summary import print_run_summary

    outcome = execute(_run_config(args))
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


def _submission_parser(commands) -> None:
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


def _cmd_submission(args: argparse.Namespace) -> int:
    from client_sut.measure.discovery import read_endpoints_file
    from client_sut.submission.command import (
        SubmissionConfig,
        make_submission,
        report_lines,
    )

    if args.checker is None:
        raise UsageError("no checker: pass --checker with a checkout of "
                         "github.com/mlcommons/inference (or set MLPERF_INFERENCE_DIR)")
    run_args = build_parser().parse_args(["run", *args.run_args]) if args.run_args else None
    config = SubmissionConfig(
        system_file=args.system_file, checker=args.checker, output_dir=args.output_dir,
        division=args.division, scenarios=tuple(args.scenario or ("Offline", "Server")),
        runs=args.runs, user_conf=args.user_conf, run_args=tuple(args.run_args),
        # The servers to ask for their vLLM version and model (names to resolve are skipped).
        endpoints=tuple(normalise_endpoint(url) for url in [
            *run_args.endpoint, *(listed for path in run_args.endpoints_file
                                  for listed in read_endpoints_file(path))]
            if url.startswith(("http://", "https://"))) if run_args else (),
        credentials=_deployment_config(run_args, args.output_dir).credentials if run_args
        else Credentials(),
        skip_dataset_size_check=args.skip_dataset_size_check)
    outcome = make_submission(config, lambda line: print(line, file=sys.stderr, flush=True))
    print("\n".join(report_lines(outcome.report, args.output_dir / "submission.json")))
    return outcome.exit_status


def _report_parser(commands) -> None:
    report = commands.add_parser(
        "report", help="one self-contained report.html from run, sla and sweep folders",
        description="Write report.html (nothing fetched when it is opened) and its figures as "
                    "SVG files beside it, from the folders `run`, `sla` and `sweep` wrote; "
                    "several runs or sweeps are also put side by side, or with --nodes "
                    "combined as the nodes of one benchmark.")
    report.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    report.add_argument("--output-dir", type=Path, metavar="DIR",
                        help="where report.html goes (default: DIR for one folder, ./report for "
                             "several)")
    report.add_argument("--nodes", action="store_true",
                        help="the run folders are the nodes of one benchmark (one client per "
                             "node, run at once): a per-node table and the combined figures")


def _cmd_report(args: argparse.Namespace) -> int:
    from client_sut.report import write_report

    default = args.dirs[0] if len(args.dirs) == 1 else Path("report")
    print(f"report: {write_report(args.dirs, args.output_dir or default, nodes=args.nodes)}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="client-sut", description="MLPerf-grade benchmark client for LLM "
                                                     "deployments (Llama-3.1-8B, CNN/DailyMail).")
    parser.add_argument("--version", action="version", version=f"client-sut {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _run_parser(commands)
    _sla_parser(commands)
    _sweep_parser(commands)
    _evaluate_parser(commands)
    reference_command.add_parser(commands)
    _calibrate_parser(commands)
    _report_parser(commands)
    _endpoints_parser(commands)
    _submission_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"run": _cmd_run, "sla": _cmd_sla, "sweep": _cmd_sweep, "evaluate": _cmd_evaluate,
                "calibrate": _cmd_calibrate, "report": _cmd_report,
                "endpoints": _cmd_endpoints,
                "submission": _cmd_submission}
    try:
        # A command that owns its parser names its own handler.
        return (getattr(args, "handler", None) or handlers[args.command])(args)
    except UsageError as exc:
        print(f"client-sut {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunStopped as exc:  # a server gone while a command made its runs (sla keeps its own)
        print(f"client-sut {args.command}: stopped: {exc.reason}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:  # before the run started (a run handles its own signals)
        print(f"client-sut {args.command}: interrupted before anything was measured",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
