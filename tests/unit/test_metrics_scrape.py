"""The servers' Prometheus metrics: parsed by name, joined to the measured window."""

from __future__ import annotations

import math

import pytest

from client_sut.observe.join import (
    Scrape,
    Window,
    endpoint_without_metrics,
    gpu_summary,
    token_agreement,
    window_summary,
)
from client_sut.observe.prometheus import (
    Histogram,
    histogram_quantile,
    parse_dcgm,
    parse_server_metrics,
)

# As vLLM 0.32 exposes them (two engines), trimmed to the figures a run uses.
VLLM_032 = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
vllm:num_requests_waiting{engine="1",model_name="m"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.5
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="m"} 2.0
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 1000.0
vllm:prompt_tokens_total{engine="1",model_name="m"} 500.0
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} 640.0
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 200.0
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 50.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.01",model_name="m"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.02",model_name="m"} 5.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.04",model_name="m"} 10.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 10.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 0.25
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 10.0
# TYPE vllm:some_other_metric gauge
vllm:some_other_metric{engine="0"} 7.0
"""

# An older vLLM: gpu_ names, ITL under its old name, no _total on a counter's samples.
VLLM_OLD = """\
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.75
# TYPE vllm:gpu_prefix_cache_hits counter
vllm:gpu_prefix_cache_hits{model_name="m"} 4.0
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_bucket{le="0.01",model_name="m"} 3.0
vllm:time_per_output_token_seconds_bucket{le="+Inf",model_name="m"} 4.0
vllm:time_per_output_token_seconds_sum{model_name="m"} 0.05
vllm:time_per_output_token_seconds_count{model_name="m"} 4.0
"""


def test_vllm_names_are_read_and_engines_added_up():
    metrics = parse_server_metrics(VLLM_032)
    assert metrics.gauges == {"running": 5.0, "waiting": 1.0, "kv_cache_usage": 0.5}
    assert metrics.counters == {"preemptions": 2.0, "prompt_tokens": 1500.0,
                                "generation_tokens": 640.0, "prefix_cache_queries": 200.0,
                                "prefix_cache_hits": 50.0}
    ttft = metrics.histograms["ttft"]
    assert ttft.bounds == (0.01, 0.02, 0.04, math.inf)
    assert ttft.counts == (0.0, 5.0, 10.0, 10.0) and ttft.count == 10.0
    assert set(metrics.histograms) == {"ttft"}  # what a server does not expose is left out


def test_older_names_are_matched_too():
    metrics = parse_server_metrics(VLLM_OLD)
    assert metrics.gauges == {"kv_cache_usage": 0.75}
    assert metrics.counters == {"prefix_cache_hits": 4.0}
    assert metrics.histograms["itl"].count == 4.0


# The other servers' names, as their sources register them (../shared/dialects.md).
OTHER_SERVERS = {
    "sglang": """\
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="m"} 4.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="m"} 2.0
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="m"} 0.3
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="m"} 900.0
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="m"} 300.0
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 6.0
sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 6.0
sglang:time_to_first_token_seconds_sum{model_name="m"} 0.3
sglang:time_to_first_token_seconds_count{model_name="m"} 6.0
""",
    "llamacpp": """\
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 900
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 300
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 4
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 2
""",
    "tgi": """\
# TYPE tgi_queue_size gauge
tgi_queue_size 2
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 4
# TYPE tgi_request_input_length histogram
tgi_request_input_length_bucket{le="1000"} 6
tgi_request_input_length_bucket{le="+Inf"} 6
tgi_request_input_length_sum 900
tgi_request_input_length_count 6
# TYPE tgi_request_generated_tokens histogram
tgi_request_generated_tokens_bucket{le="1000"} 6
tgi_request_generated_tokens_bucket{le="+Inf"} 6
tgi_request_generated_tokens_sum 300
tgi_request_generated_tokens_count 6
""",
}


@pytest.mark.parametrize("server", sorted(OTHER_SERVERS))
def test_other_servers_names_give_the_same_figures(server):
    metrics = parse_server_metrics(OTHER_SERVERS[server])
    if server == "llamacpp":  # its prompt count leaves out what its prompt cache held
        assert metrics.counters == {"generation_tokens": 300.0}
    else:
        assert metrics.counters == {"prompt_tokens": 900.0, "generation_tokens": 300.0}
    assert metrics.gauges["running"] == 4.0 and metrics.gauges["waiting"] == 2.0
    if server == "sglang":
        assert metrics.histograms["ttft"].count == 6.0
        assert metrics.gauges["kv_cache_usage"] == 0.3
    else:  # llama.cpp and TGI keep no TTFT histogram
        assert metrics.histograms == {}


def test_malformed_exposition_is_an_error():
    with pytest.raises(ValueError):
        parse_server_metrics("vllm:num_requests_running{engine=0 oops\n")


def test_histogram_quantile_interpolates_inside_its_bucket():
    histogram = Histogram((0.01, 0.02, 0.04, math.inf), (0.0, 5.0, 10.0, 10.0), 0.25, 10.0)
    median = histogram_quantile(histogram, 0.5)
    assert (median.value, median.lower, median.upper) == (0.02, 0.01, 0.02)
    p99 = histogram_quantile(histogram, 0.99)
    assert p99.lower == 0.02 and p99.upper == 0.04
    assert p99.value == pytest.approx(0.02 + 0.02 * (9.9 - 5) / 5)
    beyond = Histogram((0.01, math.inf), (1.0, 3.0), 1.0, 3.0)
    assert histogram_quantile(beyond, 0.9).upper == math.inf  # past the last bound: open
    assert histogram_quantile(Histogram((math.inf,), (0.0,), 0.0, 0.0), 0.5) is None


def _scrape(t_s: float, generated: float, running: float, ttft_counts=(0.0, 0.0)) -> Scrape:
    text = (f"vllm:generation_tokens_total {generated}\nvllm:prompt_tokens_total {generated * 3}\n"
            f"vllm:num_requests_running {running}\nvllm:num_requests_waiting 0\n"
            f'vllm:time_to_first_token_seconds_bucket{{le="0.05"}} {ttft_counts[0]}\n'
            f'vllm:time_to_first_token_seconds_bucket{{le="+Inf"}} {ttft_counts[1]}\n'
            f"vllm:time_to_first_token_seconds_count {ttft_counts[1]}\n"
            f"vllm:time_to_first_token_seconds_sum 0\n")
    return Scrape("http://a", int(t_s * 1e9), 10_000_000, parse_server_metrics(text))


def test_window_counts_between_the_scrapes_around_it():
    scrapes = [_scrape(0.0, 100, 0),  # warm-up traffic before the run: not counted
               _scrape(1.0, 128, 0),  # the last answered before the window opened at 2 s
               _scrape(3.0, 500, 8, (4, 4)), _scrape(4.0, 900, 6, (9, 10)),
               _scrape(5.5, 1152, 0, (10, 12)),  # the first asked for after it closed at 5 s
               _scrape(6.5, 2000, 3, (20, 30))]  # later traffic: not counted
    summary = window_summary(scrapes, Window(2_000_000_000, 5_000_000_000))
    assert summary["generation_tokens"] == 1024 and summary["prompt_tokens"] == 3072
    assert summary["running"] == {"mean": 3.5, "max": 8.0}
    assert summary["scrapes"] == 4 and summary["notes"] == []
    assert summary["ttft_ms"]["count"] == 12
    assert summary["ttft_ms"]["bucket_ms"]["p50"] == [0.0, 50.0]
    assert summary["ttft_ms"]["p99"] == 50.0  # in the open last bucket: its lower bound
    agreement = token_agreement(summary, 1024, 3000)
    assert agreement["output_tokens_agree"] is True
    assert agreement["prompt_tokens_agree"] is False


def test_a_window_without_scrapes_around_it_says_so():
    summary = window_summary([_scrape(3.0, 10, 1), _scrape(4.0, 20, 1)],
                             Window(2_000_000_000, 5_000_000_000))
    assert summary["generation_tokens"] == 10 and len(summary["notes"]) == 2


def test_a_server_without_metrics_is_noted():
    failed = [Scrape("http://a", 1, 1, None, "HTTP 404")]
    assert window_summary(failed, Window(0, 10)) == {"scraped": False}
    assert endpoint_without_metrics(failed) == "HTTP 404"
    assert Scrape.from_json(failed[0].to_json()) == failed[0]


DCGM = """\
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1",modelName="NVIDIA H100 80GB HBM3",Hostname="g1",DCGM_FI_DRIVER_VERSION="550.54.15"} 87
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-2",modelName="NVIDIA H100 80GB HBM3",Hostname="g1"} 12
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-1",modelName="NVIDIA H100 80GB HBM3",Hostname="g1"} 512.5
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-1",modelName="NVIDIA H100 80GB HBM3",Hostname="g1"} 70000
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-1",modelName="NVIDIA H100 80GB HBM3",Hostname="g1"} 11559
"""


def test_dcgm_gpus_are_read_and_summarised_over_the_window():
    gpus = parse_dcgm(DCGM)
    assert [(g["index"], g["name"]) for g in gpus] == [("0", "NVIDIA H100 80GB HBM3"),
                                                       ("1", "NVIDIA H100 80GB HBM3")]
    assert gpus[0]["utilization_pct"] == 87 and gpus[0]["power_w"] == 512.5
    lines = [{"source": "dcgm", "t_ns": t, "gpus": parse_dcgm(DCGM)} for t in (5, 15, 25)]
    lines[1]["gpus"][0]["utilization_pct"] = 93
    summary = gpu_summary(lines, Window(10, 30))
    first = summary[0]
    assert first["samples"] == 2 and first["utilization_pct"] == {"mean": 90.0, "max": 93}
    assert first["memory_total_mib"] == 81559 and first["driver"] == "550.54.15"
    assert first["host"] == "g1"
