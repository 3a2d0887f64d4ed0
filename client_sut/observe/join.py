"""The servers' scraped metrics joined to the run's measured window (pure functions).

A scrape's state was read by the server somewhere between the request for it (`t_ns`) and its
answer (`t_ns + rtt_ns`), on the client's monotonic clock. The window's counters are taken
between the last scrape answered before the window opened and the first one asked for after it
closed, so every request of the window falls between the two and none from outside does
(warm-up traffic before the first scrape's answer, say). Gauges are averaged over the scrapes
inside that span. Histograms become percentiles the way Prometheus' `histogram_quantile` does,
with the bucket each one fell in: that bucket is the figure's resolution.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from client_sut.observe.prometheus import ServerMetrics, histogram_quantile

HISTOGRAM_PERCENTILES = (50, 90, 99)
HISTOGRAM_METHOD = ("Prometheus histogram_quantile: linear interpolation inside the bucket that "
                    "holds the rank; bucket_ms gives each figure's bucket, its resolution")


@dataclass(frozen=True, slots=True)
class Scrape:
    """One scrape of one endpoint's /metrics, as server_metrics.jsonl keeps it."""
    endpoint: str
    t_ns: int  # the request for it was sent
    rtt_ns: int
    metrics: ServerMetrics | None  # None: the scrape failed (see error)
    error: str | None = None

    @property
    def answered_ns(self) -> int:
        return self.t_ns + self.rtt_ns

    @property
    def mid_ns(self) -> int:
        return self.t_ns + self.rtt_ns // 2

    def to_json(self) -> dict:
        line = {"source": "server", "endpoint": self.endpoint, "t_ns": self.t_ns,
                "rtt_ns": self.rtt_ns}
        if self.metrics is not None:
            line.update(self.metrics.to_json())
        if self.error is not None:
            line["error"] = self.error
        return line

    @classmethod
    def from_json(cls, line: dict) -> Scrape:
        ok = "error" not in line
        return cls(line["endpoint"], line["t_ns"], line["rtt_ns"],
                   ServerMetrics.from_json(line) if ok else None, line.get("error"))


@dataclass(frozen=True, slots=True)
class Window:
    """LoadGen's measured window on the client's clock: first issue to last completion."""
    start_ns: int
    end_ns: int


def _mean_max(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "max": None}
    return {"mean": round(sum(values) / len(values), 4), "max": round(max(values), 4)}


def _ms(seconds: float) -> float | None:
    return None if math.isinf(seconds) else round(seconds * 1000, 4)


def _percentiles(histogram) -> dict:
    figures: dict = {"count": histogram.count}
    buckets = {}
    for pct in HISTOGRAM_PERCENTILES:
        quantile = histogram_quantile(histogram, pct / 100)
        figures[f"p{pct}"] = None if quantile is None else _ms(quantile.value)
        buckets[f"p{pct}"] = None if quantile is None else [_ms(quantile.lower),
                                                             _ms(quantile.upper)]
    figures["bucket_ms"] = buckets
    return figures


def window_summary(scrapes: Iterable[Scrape], window: Window) -> dict:
    """One endpoint's server figures over the window, or why there are none."""
    ok = sorted((s for s in scrapes if s.metrics is not None), key=lambda s: s.t_ns)
    if not ok:
        return {"scraped": False}
    notes = []
    before = [s for s in ok if s.answered_ns <= window.start_ns]
    after = [s for s in ok if s.t_ns >= window.end_ns]
    first = before[-1] if before else ok[0]
    last = after[0] if after else ok[-1]
    if not before:
        notes.append("no scrape was answered before the window opened: counted from the first")
    if not after:
        notes.append("no scrape was asked for after the window closed: counted to the last")
    inside = [s for s in ok if first.t_ns <= s.t_ns <= last.t_ns]
    counters = {}
    for name, value in last.metrics.counters.items():
        if name in first.metrics.counters:
            delta = value - first.metrics.counters[name]
            if delta < 0:
                notes.append(f"{name} went down: the server restarted during the run")
            counters[name] = int(delta) if float(delta).is_integer() else delta
    gauges = {name: [s.metrics.gauges[name] for s in inside if name in s.metrics.gauges]
              for name in ("running", "waiting", "kv_cache_usage")}
    queries, hits = counters.get("prefix_cache_queries"), counters.get("prefix_cache_hits")
    histograms = {name: _percentiles(h.minus(first.metrics.histograms[name]))
                  for name, h in last.metrics.histograms.items()
                  if name in first.metrics.histograms}
    return {
        "scraped": True,
        "scrapes": len(inside),
        "span_s": round((last.mid_ns - first.mid_ns) / 1e9, 3),
        "generation_tokens": counters.get("generation_tokens"),
        "prompt_tokens": counters.get("prompt_tokens"),
        "preemptions": counters.get("preemptions"),
        "prefix_cache_hit_rate": round(hits / queries, 4) if queries and hits is not None
        else None,
        "running": _mean_max(gauges["running"]),
        "waiting": _mean_max(gauges["waiting"]),
        "kv_cache_usage_max": max(gauges["kv_cache_usage"]) if gauges["kv_cache_usage"] else None,
        "ttft_ms": histograms.get("ttft"),
        "itl_ms": histograms.get("itl"),
        "queue_time_ms": histograms.get("queue_time"),
        "histogram_method": HISTOGRAM_METHOD if histograms else None,
        "notes": notes,
    }


def token_agreement(server: dict, client_output_tokens: int, client_prompt_tokens: int) -> dict:
    """The server's token counts beside the client's: they should agree exactly when the client
    was the server's only user over the window."""
    generated, prompt = server.get("generation_tokens"), server.get("prompt_tokens")
    return {
        "client_output_tokens": client_output_tokens,
        "server_generation_tokens": generated,
        "output_tokens_agree": None if generated is None else generated == client_output_tokens,
        "client_prompt_tokens": client_prompt_tokens,
        "server_prompt_tokens": prompt,
        "prompt_tokens_agree": None if prompt is None else prompt == client_prompt_tokens,
    }


def endpoint_without_metrics(scrapes: Iterable[Scrape]) -> str | None:
    """Why an endpoint has no metrics (the first failure), when none of its scrapes worked."""
    failures = [s.error for s in scrapes if s.metrics is None]
    return failures[0] if failures else None


def gpu_summary(lines: Iterable[dict], window: Window) -> list[dict]:
    """Per GPU (NVML or DCGM samples in the window): utilisation and power mean and max, the
    most memory in use, and what the DCGM exporter's labels say of it."""
    gpus: dict[tuple[str, str, str], dict] = {}
    for line in lines:
        if not window.start_ns <= line["t_ns"] <= window.end_ns:
            continue
        for gpu in line.get("gpus", ()):
            key = (line["source"], gpu.get("host", ""), gpu["index"])
            entry = gpus.setdefault(key, {"source": line["source"], "samples": []})
            entry["samples"].append(gpu)
    summaries = []
    for (source, host, index), entry in sorted(gpus.items()):
        samples = entry["samples"]
        last = samples[-1]
        summary = {"source": source, "index": index, "samples": len(samples)}
        if host:
            summary["host"] = host
        for label in ("name", "driver"):
            if last.get(label):
                summary[label] = last[label]
        if "memory_free_mib" in last and "memory_used_mib" in last:
            summary["memory_total_mib"] = last["memory_used_mib"] + last["memory_free_mib"]
        for figure in ("utilization_pct", "power_w"):
            summary[figure] = _mean_max([s[figure] for s in samples if figure in s])
        used = [s["memory_used_mib"] for s in samples if "memory_used_mib" in s]
        summary["memory_used_mib_max"] = max(used) if used else None
        summaries.append(summary)
    return summaries
