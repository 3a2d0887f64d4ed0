"""The run's configuration: one frozen value, validated before anything is sent."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

from client_sut.dialect import KNOWN
from client_sut.errors import UsageError
from client_sut.request import Api, GenerationParams, Timeouts
from client_sut.security import Credentials

# The official Offline query count and performance sample count for Llama-3.1-8B datacenter.
OFFICIAL_SAMPLE_COUNT = {"datacenter": 13_368, "edge": 5_000}
OFFICIAL_MIN_DURATION_S = 600
DEFAULT_WARMUP = 4  # untimed requests per endpoint before a run


class Scenario(str, Enum):
    OFFLINE = "Offline"
    SERVER = "Server"
    INTERACTIVE = "Interactive"
    SINGLE_STREAM = "SingleStream"

    @property
    def model_key(self) -> str:
        """LoadGen's model key in mlperf.conf."""
        return {Scenario.INTERACTIVE: "llama3_1-8b-interactive",
                Scenario.SINGLE_STREAM: "llama3_1-8b-edge"}.get(self, "llama3_1-8b")

    @property
    def loadgen_name(self) -> str:
        """Interactive is LoadGen's Server scenario with the interactive model key's limits."""
        return "Server" if self is Scenario.INTERACTIVE else self.value

    @property
    def streams_first_token(self) -> bool:
        return self is not Scenario.OFFLINE

    @property
    def category(self) -> str:
        return "edge" if self is Scenario.SINGLE_STREAM else "datacenter"


@dataclass(frozen=True, slots=True)
class LatencyLimits:
    """The p99 limits a Server or Interactive run is held to: its SLA."""
    ttft_ms: float
    tpot_ms: float


# mlperf.conf's limits for Llama-3.1-8B; a run held to any others is not a submission result.
OFFICIAL_LATENCY_LIMITS = {Scenario.SERVER: LatencyLimits(2000.0, 100.0),
                           Scenario.INTERACTIVE: LatencyLimits(500.0, 30.0)}


class ProgressMode(str, Enum):
    AUTO = "auto"  # live on a terminal, plain lines otherwise
    LIVE = "live"
    PLAIN = "plain"
    NONE = "none"

    def resolve(self, is_terminal: bool) -> ProgressMode:
        if self is ProgressMode.AUTO:
            return ProgressMode.LIVE if is_terminal else ProgressMode.PLAIN
        return self


class Mode(str, Enum):
    PERFORMANCE = "performance"
    ACCURACY = "accuracy"


class PromptFormat(str, Enum):
    """The prompt's wording and framing. OFFICIAL is MLPerf's plain prompt, exact for
    Llama-3.1-8B; CHAT puts the same instruction and article in the user turn of the
    tokenizer's own chat template, for a model trained on another chat format."""
    OFFICIAL = "official"
    CHAT = "chat"


class PromptForm(str, Enum):
    TOKENS = "tokens"  # the prompt as token ids (vLLM accepts a list of ints)
    TEXT = "text"  # the prompt as text, tokenized by the server


MAX_CLIENT_WORKERS = 64


@dataclass(frozen=True, slots=True)
class RunConfig:
    endpoints: tuple[str, ...]
    dataset: str
    output_dir: Path
    scenario: Scenario = Scenario.OFFLINE
    mode: Mode = Mode.PERFORMANCE
    model: str | None = None
    tokenizer: str | None = None
    target_qps: float | None = None
    user_conf: Path | None = None
    total_sample_count: int | None = None
    api: Api = Api.COMPLETIONS
    prompt_form: PromptForm | None = None  # None: tokens for completions, text for chat
    prompt_format: PromptFormat = PromptFormat.OFFICIAL
    # A reference implementation's outputs (client-sut reference): accuracy is judged against
    # them, as MLPerf judges a model without published targets.
    reference: Path | None = None
    max_concurrency: int = 512
    duration_s: float | None = None
    min_query_count: int | None = None
    generation: GenerationParams = GenerationParams()
    timeouts: Timeouts = Timeouts()
    audit: str | None = None  # a compliance test, e.g. TEST06
    credentials: Credentials = Credentials()
    scoring_workers: int | None = None  # processes for accuracy scoring (default: every core)
    # Worker processes the streams are sharded over (0: the streams run on the LoadGen
    # process's own event loop, enough until one core cannot read the tokens; None: auto).
    client_workers: int | None = 0
    calibration: Path | None = None  # calibrate.json: warn when the load nears its capacity
    limits: LatencyLimits | None = None  # TTFT/TPOT p99 limits overriding mlperf.conf's
    warmup: int = DEFAULT_WARMUP  # untimed requests per endpoint before LoadGen starts (0: none)
    # End the run as soon as its p99 limits are proven broken (an sla probe): the verdict
    # cannot change, so the rest of the run would only spend time.
    stop_when_sla_fails: bool = False
    token_cache: Path | None = None  # tokenized prompts kept here for the next run to reuse
    # LoadGen's equal-issue mode pads the query count to a multiple of the sample count (13,368
    # for the full dataset): a submission needs it; a short search probe must not have it.
    equal_issue: bool = True
    progress: ProgressMode = ProgressMode.AUTO
    gpu_metrics: str | None = None  # a DCGM exporter's /metrics URL: GPUs on another host
    server_metrics: bool = True  # scrape each endpoint's /metrics during the run
    endpoints_files: tuple[Path, ...] = ()  # more endpoints, one URL a line (server.launch)
    dialect: str | None = None  # the servers' kind, as the user names it (None: probed)


def parse_choice(enum_type: type[Enum], value: str, flag: str):
    by_name = {member.value.lower(): member for member in enum_type}
    try:
        return by_name[value.lower()]
    except KeyError:
        choices = ", ".join(member.value for member in enum_type)
        raise UsageError(f"{flag} {value!r} is not one of: {choices}") from None


def normalise_endpoint(url: str) -> str:
    """Base URL of an OpenAI-compatible server, without a trailing slash or /v1; a `dns+`
    prefix (every address of the name, see discovery.py) is kept."""
    prefix = "dns+" if url.startswith("dns+") else ""
    parts = urlsplit(url[len(prefix):])
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--endpoint {url!r} is not an http(s) URL; give e.g. "
                         f"http://127.0.0.1:8000 (or dns+http://NAME:8000 for every address "
                         f"of NAME)")
    base = url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def validate(config: RunConfig) -> RunConfig:
    """Check what can be checked without I/O. Raises UsageError with the fix."""
    if not config.endpoints and not config.endpoints_files:
        raise UsageError("no --endpoint given; pass the base URL of an OpenAI-compatible server "
                         "(or --endpoints-file)")
    if len(set(config.endpoints)) != len(config.endpoints):
        raise UsageError("the same --endpoint is given twice; give each server once")
    _positive_number(config.target_qps, "--target-qps")
    _positive_number(config.duration_s, "--duration")
    if config.gpu_metrics is not None:
        parts = urlsplit(config.gpu_metrics)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--gpu-metrics {config.gpu_metrics!r} is not an http(s) URL; give "
                             f"a DCGM exporter's, e.g. http://gpu-host:9400/metrics")
    for value, flag in ((config.total_sample_count, "--total-sample-count"),
                        (config.min_query_count, "--min-query-count"),
                        (config.max_concurrency, "--max-concurrency")):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if config.client_workers is not None:
        _check_workers(config)
    if config.warmup < 0:
        raise UsageError(f"--warmup must be 0 (none) or more requests per endpoint, got "
                         f"{config.warmup}")
    if config.limits is not None:
        if config.scenario.loadgen_name != "Server":
            raise UsageError("--ttft-limit-ms/--tpot-limit-ms apply to Server and Interactive "
                             "runs only (Offline has no latency limits)")
        _positive_number(config.limits.ttft_ms, "--ttft-limit-ms")
        _positive_number(config.limits.tpot_ms, "--tpot-limit-ms")
    if config.stop_when_sla_fails and config.scenario.loadgen_name != "Server":
        raise UsageError("--stop-when-sla-fails needs latency limits: use it with Server or "
                         "Interactive")
    if config.target_qps is not None and config.scenario is Scenario.SINGLE_STREAM:
        raise UsageError("--target-qps does not apply to SingleStream (one query at a time); "
                         "drop it or choose Offline, Server or Interactive")
    if config.audit is not None and config.mode is Mode.ACCURACY:
        raise UsageError(f"--audit {config.audit} is a performance-mode test; drop --mode accuracy")
    if config.api is Api.CHAT and config.prompt_form is PromptForm.TOKENS:
        raise UsageError("--api chat sends the prompt as text (the server applies its chat "
                         "template); drop --prompt-form tokens or use --api completions")
    if config.reference is not None and config.mode is not Mode.ACCURACY:
        raise UsageError("--reference judges accuracy: use it with --mode accuracy")
    config = replace(config, dialect=check_dialect(config.dialect))
    if config.prompt_form is None:
        default = PromptForm.TEXT if config.api is Api.CHAT else PromptForm.TOKENS
        config = replace(config, prompt_form=default)
    for name in ("connect", "first_byte", "gap", "total", "keepalive"):
        value = getattr(config.timeouts, name)
        if not (math.isfinite(value) and value > 0):
            flag = {"total": "--request-timeout", "keepalive": "--keepalive"}.get(
                name, f"--{name.replace('_', '-')}-timeout")
            raise UsageError(f"{flag} must be a number of seconds greater than 0, got {value}")
    return config


def check_dialect(name: str | None) -> str | None:
    """A kind of server the client knows (`--dialect`), in lower case; None stays None."""
    if name is not None and name.lower() not in KNOWN:
        raise UsageError(f"--dialect {name!r} is not one of: {', '.join(KNOWN)}")
    return name.lower() if name is not None else None


def _check_workers(config: RunConfig) -> None:
    if not 0 <= config.client_workers <= MAX_CLIENT_WORKERS:
        raise UsageError(f"--workers must be 0 (the streams on LoadGen's process) to "
                         f"{MAX_CLIENT_WORKERS} worker processes, got {config.client_workers}")
    if config.client_workers > config.max_concurrency:
        raise UsageError(f"--workers {config.client_workers} is more than --max-concurrency "
                         f"{config.max_concurrency}: every worker needs a stream of its own")


def _positive_number(value: float | None, flag: str) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{flag} must be a number greater than 0, got {value}")

