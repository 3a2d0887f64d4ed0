"""A server's Prometheus exposition, reduced to the figures a run is judged beside.

vLLM 0.32's names are matched first; older and newer vLLMs rename some (`gpu_cache_usage_perc`,
`time_per_output_token_seconds`, a `gpu_` prefix on the prefix cache), and the other servers
have names of their own (SGLang `sglang:`, TensorRT-LLM `trtllm_`, llama.cpp `llamacpp:`, TGI
`tgi_`, NIM's unprefixed ones), so each figure lists the names it accepts, `_total` is optional
on counters, and what a server does not expose is left out. TGI counts tokens only as the
`_sum` of its per-request histograms, which is read as the counter. Several label sets
(engines, models) are added up; KV-cache use takes the fullest.

Histograms keep their cumulative buckets, so a window's percentiles can be taken from the
difference of two scrapes, as Prometheus' `histogram_quantile` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

GAUGES = {
    "running": ("vllm:num_requests_running", "sglang:num_running_reqs",
                "llamacpp:requests_processing", "tgi_batch_current_size",
                "num_requests_running"),
    "waiting": ("vllm:num_requests_waiting", "sglang:num_queue_reqs",
                "llamacpp:requests_deferred", "tgi_queue_size", "num_requests_waiting"),
    "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
                       "vllm:cpu_cache_usage_perc", "sglang:token_usage",
                       "llamacpp:kv_cache_usage_ratio", "gpu_cache_usage_perc"),
}
COUNTERS = {
    "preemptions": ("vllm:num_preemptions",),
    # Not llama.cpp's prompt_tokens_total: it counts only the prompt tokens it evaluated, not
    # those its prompt cache held, so it is not the prompt tokens served.
    "prompt_tokens": ("vllm:prompt_tokens", "sglang:prompt_tokens", "trtllm_prompt_tokens",
                      "prompt_tokens"),
    "generation_tokens": ("vllm:generation_tokens", "sglang:generation_tokens",
                          "llamacpp:tokens_predicted", "trtllm_generation_tokens",
                          "generation_tokens"),
    "prefix_cache_queries": ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries"),
    "prefix_cache_hits": ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits"),
}
# Counters a server keeps only as the _sum of a per-request histogram (TGI).
COUNTERS_FROM_SUMS = {
    "prompt_tokens": ("tgi_request_input_length",),
    "generation_tokens": ("tgi_request_generated_tokens",),
}
HISTOGRAMS = {
    "ttft": ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds",
             "trtllm_time_to_first_token_seconds", "time_to_first_token_seconds"),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds",
            "sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds",
            "trtllm_time_per_output_token_seconds", "time_per_output_token_seconds"),
    "queue_time": ("vllm:request_queue_time_seconds", "sglang:queue_time_seconds"),
}
# A gauge that several engines report is added up, except the cache: its fullest engine counts.
_GAUGE_COMBINE = {"kv_cache_usage": max}


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative bucket counts by upper bound (the last bound is +inf), in seconds."""
    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    total: float  # the _sum
    count: float

    def minus(self, earlier: Histogram) -> Histogram:
        if earlier.bounds != self.bounds:
            return self  # the buckets changed (a restart with other settings): take it whole
        return Histogram(self.bounds, tuple(a - b for a, b in zip(self.counts, earlier.counts)),
                         self.total - earlier.total, self.count - earlier.count)

    def to_json(self) -> dict:
        return {"le": [_finite(b) for b in self.bounds], "counts": list(self.counts),
                "sum": self.total, "count": self.count}

    @classmethod
    def from_json(cls, data: dict) -> Histogram:
        bounds = tuple(math.inf if b is None else float(b) for b in data["le"])
        return cls(bounds, tuple(data["counts"]), data["sum"], data["count"])


@dataclass(frozen=True, slots=True)
class ServerMetrics:
    """One scrape of one server: the figures it exposed, by our names."""
    gauges: dict[str, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, Histogram] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"gauges": self.gauges, "counters": self.counters,
                "histograms": {k: h.to_json() for k, h in self.histograms.items()}}

    @classmethod
    def from_json(cls, data: dict) -> ServerMetrics:
        return cls(dict(data.get("gauges", {})), dict(data.get("counters", {})),
                   {k: Histogram.from_json(h) for k, h in data.get("histograms", {}).items()})


def _finite(bound: float) -> float | None:
    return None if math.isinf(bound) else bound  # JSON has no infinity: null is +Inf


def _ours(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {name: ours for ours, names in table.items() for name in names}


_GAUGE_NAMES, _COUNTER_NAMES, _HISTOGRAM_NAMES = _ours(GAUGES), _ours(COUNTERS), _ours(HISTOGRAMS)
_SUM_COUNTER_NAMES = _ours(COUNTERS_FROM_SUMS)


def _counter_name(sample_name: str) -> str:
    return sample_name[:-len("_total")] if sample_name.endswith("_total") else sample_name


def parse_server_metrics(text: str) -> ServerMetrics:
    """Our figures in a Prometheus text exposition. Raises ValueError on malformed text."""
    gauges: dict[str, list[float]] = {}
    counters: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, value = sample.name, sample.value
            if name in _GAUGE_NAMES:
                gauges.setdefault(_GAUGE_NAMES[name], []).append(value)
            elif _counter_name(name) in _COUNTER_NAMES:
                ours = _COUNTER_NAMES[_counter_name(name)]
                counters[ours] = counters.get(ours, 0.0) + value
            else:
                base, _, suffix = name.rpartition("_")
                if suffix == "sum" and base in _SUM_COUNTER_NAMES:
                    ours = _SUM_COUNTER_NAMES[base]
                    counters[ours] = counters.get(ours, 0.0) + value
                    continue
                ours = _HISTOGRAM_NAMES.get(base)
                if ours is None:
                    continue
                if suffix == "bucket":
                    bound = float(sample.labels["le"])
                    per_bound = buckets.setdefault(ours, {})
                    per_bound[bound] = per_bound.get(bound, 0.0) + value
                elif suffix == "sum":
                    sums[ours] = sums.get(ours, 0.0) + value
                elif suffix == "count":
                    counts[ours] = counts.get(ours, 0.0) + value
    histograms = {}
    for ours, per_bound in buckets.items():
        bounds = tuple(sorted(per_bound))
        histograms[ours] = Histogram(bounds, tuple(per_bound[b] for b in bounds),
                                     sums.get(ours, 0.0), counts.get(ours, per_bound[bounds[-1]]))
    return ServerMetrics(
        {k: _GAUGE_COMBINE.get(k, sum)(v) for k, v in gauges.items()}, counters, histograms)


@dataclass(frozen=True, slots=True)
class Quantile:
    value: float  # interpolated within its bucket
    lower: float  # the bucket it fell in: the figure's resolution
    upper: float


def histogram_quantile(histogram: Histogram, q: float) -> Quantile | None:
    """Prometheus' histogram_quantile: the bucket holding rank q * count, interpolated linearly
    inside it (the lowest bucket starts at 0). Past the last finite bound, that bound (and an
    open upper end). None for an empty histogram."""
    total = histogram.counts[-1] if histogram.counts else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(histogram.bounds, histogram.counts):
        if cumulative >= rank and cumulative > below:
            if math.isinf(bound):
                return Quantile(lower, lower, math.inf)
            share = (rank - below) / (cumulative - below)
            return Quantile(lower + (bound - lower) * share, lower, bound)
        lower, below = bound, cumulative
    return Quantile(lower, lower, math.inf)


# --- GPUs from NVIDIA's DCGM exporter ---------------------------------------------------------

DCGM_FIELDS = {
    "DCGM_FI_DEV_GPU_UTIL": "utilization_pct",
    "DCGM_FI_DEV_POWER_USAGE": "power_w",
    "DCGM_FI_DEV_FB_USED": "memory_used_mib",
    "DCGM_FI_DEV_FB_FREE": "memory_free_mib",
}


def parse_dcgm(text: str) -> list[dict]:
    """One entry per GPU (by host and index) with the DCGM exporter's utilisation, power and
    frame-buffer figures and its labels' model name. Raises ValueError on malformed text."""
    gpus: dict[tuple[str, str], dict] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            ours = DCGM_FIELDS.get(sample.name)
            if ours is None:
                continue
            labels = sample.labels
            key = (labels.get("Hostname", ""), labels.get("gpu", ""))
            gpu = gpus.setdefault(key, {"host": key[0], "index": key[1],
                                        "name": labels.get("modelName"),
                                        "driver": labels.get("DCGM_FI_DRIVER_VERSION")})
            gpu[ours] = sample.value
    return [gpus[key] for key in sorted(gpus)]
