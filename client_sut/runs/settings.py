"""LoadGen's TestSettings for a run, and why a run is or is not compliant.

`FromConfig` applies LoadGen's built-in mlperf.conf and then the user.conf. It returns non-zero
and applies nothing when the file is missing or bad, so its return code is checked. It must be
called once per process: a second call makes LoadGen log an error ("Multiple conf files are
used") that disqualifies the run, so each run builds its settings exactly once.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import mlperf_loadgen as lg

from client_sut.config import (
    OFFICIAL_LATENCY_LIMITS,
    OFFICIAL_MIN_DURATION_S,
    OFFICIAL_SAMPLE_COUNT,
    LatencyLimits,
    Mode,
    PromptFormat,
    RunConfig,
    Scenario,
)
from client_sut.errors import UsageError

OFFICIAL_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


DEFAULT_SYSTEM = "cpu-demo"


def shipped_user_conf(system: str, scenario: Scenario) -> Path:
    """loadgen_configs/<system>/<Scenario>/user.conf, as installed with the package."""
    return Path(str(resources.files("client_sut.loadgen_configs") / system / scenario.value
                    / "user.conf"))


def default_user_conf(scenario: Scenario) -> Path:
    return shipped_user_conf(DEFAULT_SYSTEM, scenario)


def check_user_conf(path: Path) -> None:
    if not path.is_file():
        raise UsageError(f"user.conf {path} does not exist; pass --user-conf with a LoadGen "
                         f"user.conf, or leave it out for the default")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        key, sep, value = content.partition("=")
        if not sep or key.strip().count(".") != 2 or not value.strip():
            raise UsageError(f"{path} line {number} is not `model.scenario.key = value`: "
                             f"{line.strip()!r}")


def build_test_settings(config: RunConfig, sample_count: int) -> lg.TestSettings:
    """mlperf.conf, then user.conf, then the command line's overrides."""
    user_conf = config.user_conf or default_user_conf(config.scenario)
    check_user_conf(user_conf)
    settings = lg.TestSettings()
    scenario = config.scenario
    status = settings.FromConfig(str(user_conf), scenario.model_key, scenario.loadgen_name)
    if status != 0:
        raise UsageError(f"LoadGen rejected {user_conf} (FromConfig returned {status}); "
                         f"check its keys against LoadGen's mlperf.conf")
    settings.scenario = getattr(lg.TestScenario, scenario.loadgen_name)
    settings.mode = (lg.TestMode.AccuracyOnly if config.mode is Mode.ACCURACY
                     else lg.TestMode.PerformanceOnly)
    settings.use_token_latencies = True
    if config.target_qps is not None:
        settings.server_target_qps = config.target_qps
        settings.offline_expected_qps = config.target_qps
    if scenario.loadgen_name == "Server" and settings.server_target_qps <= 0:
        # LoadGen would try to schedule an unbounded number of queries and exhaust memory.
        raise UsageError(f"target_qps for {scenario.value} is {settings.server_target_qps}; "
                         f"set --target-qps or a target_qps in {user_conf} above 0")
    if not config.equal_issue:
        settings.sample_concatenate_permutation = False
    if config.limits is not None:
        settings.ttft_latency = round(config.limits.ttft_ms * 1e6)
        settings.tpot_latency = round(config.limits.tpot_ms * 1e6)
    if config.duration_s is not None:
        settings.min_duration_ms = int(config.duration_s * 1000)
    if config.min_query_count is not None:
        settings.min_query_count = config.min_query_count
    official = OFFICIAL_SAMPLE_COUNT[scenario.category]
    if sample_count < official:
        settings.performance_sample_count_override = sample_count
    return settings


OFFICIAL_PERCENTILE = 0.99  # mlperf.conf's target_latency_percentile for Server and Interactive


def latency_limits(settings: lg.TestSettings) -> LatencyLimits:
    """The TTFT and TPOT limits LoadGen will judge the run by, after mlperf.conf and user.conf."""
    return LatencyLimits(settings.ttft_latency / 1e6, settings.tpot_latency / 1e6)


def compliance_notes(config: RunConfig, sample_count: int, model: str,
                     limits: LatencyLimits, percentile: float = OFFICIAL_PERCENTILE) -> list[str]:
    """Every reason this run could not stand as an MLPerf submission result (empty: none found).
    percentile: the one LoadGen judges the latency limits at (a fraction)."""
    notes = []
    official_limits = OFFICIAL_LATENCY_LIMITS.get(config.scenario)
    if official_limits is not None and limits != official_limits:
        notes.append(f"latency limits TTFT {limits.ttft_ms:g} ms / TPOT {limits.tpot_ms:g} ms "
                     f"are not the official {official_limits.ttft_ms:g} / "
                     f"{official_limits.tpot_ms:g} ms ("
                     f"{'--ttft-limit-ms/--tpot-limit-ms' if config.limits else 'user.conf'})")
    if official_limits is not None and round(percentile, 6) != OFFICIAL_PERCENTILE:
        notes.append(f"latency judged at p{percentile * 100:g}, not the official "
                     f"p{OFFICIAL_PERCENTILE * 100:g} (user.conf target_latency_percentile)")
    official = OFFICIAL_SAMPLE_COUNT[config.scenario.category]
    if config.duration_s is not None and config.duration_s < OFFICIAL_MIN_DURATION_S:
        notes.append(f"min_duration {config.duration_s:g} s is under the required "
                     f"{OFFICIAL_MIN_DURATION_S} s (--duration)")
    if not config.equal_issue:
        notes.append("equal-issue mode off: the query count is not padded to a multiple of the "
                     "sample count (--no-equal-issue)")
    if config.min_query_count is not None:
        notes.append(f"min_query_count overridden to {config.min_query_count} "
                     f"(--min-query-count)")
    if sample_count != official:
        notes.append(f"{sample_count} samples in the QSL, the benchmark uses {official}")
    if model != OFFICIAL_MODEL:
        notes.append(f"served model {model!r} is not {OFFICIAL_MODEL}")
    if config.prompt_format is not PromptFormat.OFFICIAL:
        notes.append(f"prompt format {config.prompt_format.value}: not the official plain "
                     f"prompt (--prompt-format)")
    if config.user_conf is not None:
        notes.append(f"user.conf {config.user_conf} may override settings: check it before "
                     f"submitting")
    return notes
