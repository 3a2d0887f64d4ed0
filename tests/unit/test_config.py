"""Validation of the run's configuration and LoadGen settings, before anything is sent."""

from pathlib import Path

import mlperf_loadgen as lg
import pytest

from client_sut.config import (
    OFFICIAL_LATENCY_LIMITS,
    LatencyLimits,
    Mode,
    PromptForm,
    RunConfig,
    Scenario,
    normalise_endpoint,
    parse_choice,
    validate,
)
from client_sut.errors import UsageError
from client_sut.request import Api
from client_sut.runs.settings import (
    check_user_conf,
    compliance_notes,
    default_user_conf,
    latency_limits,
)


def config(**changes) -> RunConfig:
    base = dict(endpoints=("http://127.0.0.1:1",), dataset="d.jsonl", output_dir=Path("out"))
    return RunConfig(**{**base, **changes})


@pytest.mark.parametrize("changes, message", [
    (dict(target_qps=0), "--target-qps must be a number greater than 0"),
    (dict(target_qps=-1.5), "--target-qps must be a number greater than 0"),
    (dict(target_qps=float("nan")), "--target-qps must be a number greater than 0"),
    (dict(duration_s=0), "--duration must be"),
    (dict(total_sample_count=0), "--total-sample-count must be at least 1"),
    (dict(max_concurrency=0), "--max-concurrency must be at least 1"),
    (dict(endpoints=()), "no --endpoint"),
    (dict(endpoints=("http://a", "http://a")), "given twice"),
    (dict(scenario=Scenario.SINGLE_STREAM, target_qps=2.0), "does not apply to SingleStream"),
    (dict(client_workers=-1), "--workers must be 0"),
    (dict(client_workers=65), "--workers must be 0"),
    (dict(client_workers=3, max_concurrency=2), "every worker needs a stream of its own"),
])
def test_bad_configuration_is_rejected(changes, message):
    with pytest.raises(UsageError, match=message):
        validate(config(**changes))


def test_chat_sends_text_prompts():
    assert validate(config(api=Api.CHAT)).prompt_form is PromptForm.TEXT


def test_choices_are_case_insensitive_and_errors_list_them():
    assert parse_choice(Scenario, "server", "--scenario") is Scenario.SERVER
    with pytest.raises(UsageError, match="not one of: Offline, Server, Interactive, SingleStream"):
        parse_choice(Scenario, "Batch", "--scenario")
    with pytest.raises(UsageError, match="performance, accuracy"):
        parse_choice(Mode, "fast", "--mode")


def test_endpoints_are_normalised():
    assert normalise_endpoint("http://h:8000/v1/") == "http://h:8000"
    with pytest.raises(UsageError, match="is not an http"):
        normalise_endpoint("127.0.0.1:8000")


def test_scenario_model_keys():
    assert Scenario.SERVER.model_key == "llama3_1-8b"
    assert Scenario.INTERACTIVE.model_key == "llama3_1-8b-interactive"
    assert Scenario.INTERACTIVE.loadgen_name == "Server"
    assert Scenario.SINGLE_STREAM.model_key == "llama3_1-8b-edge"


def test_short_runs_are_flagged_not_compliant():
    notes = compliance_notes(config(duration_s=30, min_query_count=10), 200, "m",
                             OFFICIAL_LATENCY_LIMITS[Scenario.SERVER])
    assert any("min_duration 30 s is under the required 600 s" in n for n in notes)
    assert any("min_query_count overridden to 10" in n for n in notes)
    assert any("200 samples in the QSL, the benchmark uses 13368" in n for n in notes)
    assert any("is not meta-llama/Llama-3.1-8B-Instruct" in n for n in notes)


@pytest.mark.parametrize("scenario", [Scenario.OFFLINE, Scenario.SERVER, Scenario.INTERACTIVE])
def test_full_run_of_the_official_model_has_no_notes(scenario):
    limits = OFFICIAL_LATENCY_LIMITS.get(scenario, LatencyLimits(1.0, 1.0))
    assert compliance_notes(config(scenario=scenario), 13_368,
                            "meta-llama/Llama-3.1-8B-Instruct", limits) == []


def test_latency_limits_other_than_the_official_ones_are_flagged():
    settings = lg.TestSettings()
    settings.ttft_latency, settings.tpot_latency = 2_000_000_000, 50_000_000
    limits = latency_limits(settings)
    assert limits == LatencyLimits(2000.0, 50.0)
    (note,) = compliance_notes(config(scenario=Scenario.SERVER), 13_368,
                               "meta-llama/Llama-3.1-8B-Instruct", limits)
    assert note == ("latency limits TTFT 2000 ms / TPOT 50 ms are not the official "
                    "2000 / 100 ms (user.conf)")
    # Judged at p90 (fewer queries certify it): said.
    (note,) = compliance_notes(config(scenario=Scenario.SERVER), 13_368,
                               "meta-llama/Llama-3.1-8B-Instruct",
                               OFFICIAL_LATENCY_LIMITS[Scenario.SERVER], 0.9)
    assert note == "latency judged at p90, not the official p99 (user.conf target_latency_percentile)"
    # Server's official limits are not Interactive's.
    assert compliance_notes(config(scenario=Scenario.INTERACTIVE), 13_368,
                            "meta-llama/Llama-3.1-8B-Instruct",
                            OFFICIAL_LATENCY_LIMITS[Scenario.SERVER])


@pytest.mark.parametrize("scenario", list(Scenario))
def test_every_scenario_has_a_well_formed_default_user_conf(scenario):
    check_user_conf(default_user_conf(scenario))


def test_malformed_user_conf(tmp_path):
    bad = tmp_path / "user.conf"
    bad.write_text("# fine\n*.Server.target_qps = 1\nthis is not a setting\n")
    with pytest.raises(UsageError, match="line 3 is not `model.scenario.key = value`"):
        check_user_conf(bad)
    with pytest.raises(UsageError, match="does not exist"):
        check_user_conf(tmp_path / "missing.conf")
