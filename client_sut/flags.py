"""The flag groups several commands share (the deployment, the latency limits) and what they
become: a RunConfig, LatencyLimits, the flags handed on to each run of a search."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from client_sut.config import (
    DEFAULT_WARMUP,
    OFFICIAL_LATENCY_LIMITS,
    LatencyLimits,
    PromptForm,
    PromptFormat,
    RunConfig,
    Scenario,
    normalise_endpoint,
    parse_choice,
)
from client_sut.dialect import KNOWN
from client_sut.errors import EXIT_USAGE
from client_sut.request import Api, Timeouts
from client_sut.security import DEFAULT_KEY_ENV, resolve_credentials

class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line and exit status 2, like every other bad input."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


DEPLOYMENT_FLAGS = "the deployment"  # the flags `run` and `sla` share


def deployment_flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
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


def limit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ttft-limit-ms", type=float, metavar="MS",
                        help="p99 TTFT limit instead of the official one (non-compliant)")
    parser.add_argument("--tpot-limit-ms", type=float, metavar="MS",
                        help="p99 TPOT limit instead of the official one (non-compliant)")


def deployment_config(args: argparse.Namespace, output_dir: Path) -> RunConfig:
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


def official_limits(scenario: Scenario) -> LatencyLimits:
    """mlperf.conf's p99 limits; none (NaN) for scenarios without them, which checks reject."""
    return OFFICIAL_LATENCY_LIMITS.get(scenario, LatencyLimits(math.nan, math.nan))


def limits_of(args: argparse.Namespace, scenario: Scenario) -> LatencyLimits | None:
    """The command line's limits, the official ones filling whichever is not given."""
    if args.ttft_limit_ms is None and args.tpot_limit_ms is None:
        return None
    official = official_limits(scenario)
    return LatencyLimits(official.ttft_ms if args.ttft_limit_ms is None else args.ttft_limit_ms,
                         official.tpot_ms if args.tpot_limit_ms is None else args.tpot_limit_ms)


def passed_on(args: argparse.Namespace) -> tuple[str, ...]:
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


def number_list(kind):
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: "
                                             f"{text!r}") from None
    return parse
