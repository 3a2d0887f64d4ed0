"""Reading LoadGen's figures and errors from its detail log."""

import json

from client_sut.analysis.loadgen_logs import loadgen_summary, parse_detail_log


def line(key, value, is_error=False, is_warning=False):
    entry = {"key": key, "value": value, "time_ms": 1.0, "namespace": "mlperf::logging",
             "event_type": "POINT_IN_TIME",
             "metadata": {"is_error": is_error, "is_warning": is_warning}}
    return ":::MLLOG " + json.dumps(entry)


def test_server_figures_are_read_from_detail_log():
    text = "\n".join([
        line("result_validity", "VALID"),
        line("result_completed_tokens_per_second", 181.5),
        line("result_first_token_50.00_percentile_latency_ns", 2_500_000),
        line("result_first_token_99.00_percentile_latency_ns", 6_276_243),
        line("result_time_per_output_token_99.00_percentile_ns", 1_998_608),
        line("early_stopping_met", True),
        line("effective_scenario", "Server"),
        line("requested_server_ttft_latency", 2_000_000_000),
        line("requested_server_tpot_latency", 100_000_000),
        "not an MLLOG line",
        ":::MLLOG {cut short",
    ])
    summary = loadgen_summary(parse_detail_log(text))
    assert (summary["ttft_limit_ms"], summary["tpot_limit_ms"]) == (2000, 100)
    assert summary["result"] == "VALID"
    assert summary["tokens_per_second"] == 181.5
    assert summary["ttft_ms"] == {"p50": 2.5, "p90": None, "p99": 6.2762}
    assert summary["tpot_ms"]["p99"] == 1.9986
    assert summary["early_stopping_met"] is True
    assert summary["errors"] == []


def test_offline_tokens_per_second_key():
    text = "\n".join([line("result_tokens_per_second", 349.5),
                      line("effective_scenario", "Offline"),
                      line("requested_server_ttft_latency", 2_000_000_000)])
    summary = loadgen_summary(parse_detail_log(text))
    assert summary["tokens_per_second"] == 349.5
    # LoadGen logs the token latency limits in Offline too; they do not apply there.
    assert summary["ttft_limit_ms"] is None and summary["tpot_limit_ms"] is None


def test_errors_and_warnings_are_collected():
    text = "\n".join([line("error_runtime", "Number of tokens need to be greater than 1", True),
                      line("warning_generic_message", "slow", is_warning=True)])
    log = parse_detail_log(text)
    assert log.errors == ("error_runtime: Number of tokens need to be greater than 1",)
    assert log.warnings == ("warning_generic_message: slow",)
