"""A run's figures as MLPerf Endpoints writes them (`performance/result_summary.json`), from
the client's request records: pure.

The definitions are Endpoints' own (mlcommons/endpoints: metrics/report.py, the aggregator's
registry and metrics_table, metrics/early_stopping.py), in nanoseconds on the monotonic clock:
- TTFT = first token - send; latency = end - send (a sample is issued when it is sent: at a
  fixed concurrency, when a slot frees); TPOT = (end - first token) / the tokens after the first
  chunk, none where there are none;
- `percentiles` are observed values (numpy's "lower": index floor(p (n - 1))), the median is the
  p50 one, `std_dev` divides by n - 1, the histogram has 30 log-spaced buckets from the minimum
  to the maximum (at least ten times the minimum);
- `early_stopping_percentiles` (TTFT, TPOT and latency, p50 to p99.9) are LoadGen's early
  stopping bounds at 99% confidence, None below the count that certifies one (662 at p99);
- `duration_ns` runs from the first send to the last completion; qps and tps are completed
  samples and output tokens over it, except at a fixed rate (Poisson arrivals), where
  LoadGen's window counts: from the first issue to the completion of the last one issued, qps
  (completed - 1) over it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from client_sut.analysis.early_stopping import early_stopping_estimate
from client_sut.analysis.metrics import first_token_ns
from client_sut.records import RequestRecord

PERCENTILES = ("99.9", "99.0", "97.0", "95.0", "90.0", "80.0", "75.0", "50.0", "25.0", "10.0",
               "5.0", "1.0")
ES_PERCENTILES = tuple(p for p in PERCENTILES if 50.0 <= float(p) < 100.0)
HISTOGRAM_BUCKETS = 30
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")
VERSION = "0.1.0"  # the Endpoints result format these files follow


def _tpot_ns(record: RequestRecord) -> float | None:
    first = first_token_ns(record)
    if first is None:
        return None
    first_chunk = next(n for n in record.event_tokens if n > 0)
    after = record.output_tokens - first_chunk
    return (record.end_ns - first) / after if after > 0 else None


def _histogram(ordered: list[float]) -> dict:
    low = max(float(ordered[0]), 1.0)
    high = max(float(ordered[-1]), low * 10.0)
    step = (math.log(high) - math.log(low)) / HISTOGRAM_BUCKETS
    edges = [math.exp(math.log(low) + i * step) for i in range(HISTOGRAM_BUCKETS + 1)]
    counts = [0] * HISTOGRAM_BUCKETS
    for value in ordered:  # half-open buckets, the last one closed, values clipped into range
        clipped = min(max(value, edges[0]), edges[-1])
        index = min(int((math.log(clipped) - math.log(low)) / step) if step else 0,
                    HISTOGRAM_BUCKETS - 1)
        counts[index] += 1
    return {"buckets": [[edges[i], edges[i + 1]] for i in range(HISTOGRAM_BUCKETS)],
            "counts": counts}


def stat_block(values: Sequence[float], tail: bool) -> dict:
    """One series: {total, min, max, median, avg, std_dev, percentiles, (early_stopping_
    percentiles), histogram}; a tail series (a latency) gets the early-stopping bounds."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return {"early_stopping_percentiles": dict.fromkeys(ES_PERCENTILES)} if tail else {}
    total = sum(ordered)
    avg = total / n
    variance = sum((v - avg) ** 2 for v in ordered) / (n - 1) if n > 1 else 0.0
    percentiles = {key: float(ordered[int(float(key) / 100 * (n - 1))]) for key in PERCENTILES}
    block = {"total": total, "min": ordered[0], "max": ordered[-1],
             "median": percentiles["50.0"], "avg": avg, "std_dev": math.sqrt(variance),
             "percentiles": percentiles}
    if tail:
        block["early_stopping_percentiles"] = {
            key: None if (bound := early_stopping_estimate(ordered, float(key) / 100)) is None
            else float(bound) for key in ES_PERCENTILES}
    block["histogram"] = _histogram(ordered)
    return block


def result_summary(records: Sequence[RequestRecord], prompt_tokens: Sequence[int],
                   poisson: bool, run_config: dict, interrupted: bool = False) -> dict:
    """performance/result_summary.json for one run. `prompt_tokens`: each record's prompt
    length in tokens, in the same order."""
    ok = [r for r in records if r.ok]
    ttft = [t - r.send_ns for r in ok if (t := first_token_ns(r)) is not None]
    tpot = [t for t in map(_tpot_ns, ok) if t is not None]
    latency = [r.end_ns - r.send_ns for r in ok]
    output = [r.output_tokens for r in ok]
    duration_ns = (max(r.end_ns for r in records) - min(r.send_ns for r in records)
                   if records else 0)
    window_ns = None
    completed = len(records)
    if poisson and completed >= 2:  # LoadGen's window: first issue to the last issued's end
        last_issued = max(records, key=lambda r: r.issue_ns)
        window_ns = last_issued.end_ns - min(r.issue_ns for r in records)
    seconds = (window_ns or duration_ns) / 1e9
    finish = dict.fromkeys((*FINISH_REASONS, "other"), 0)
    for record in ok:
        reason = record.finish_reason if record.finish_reason in FINISH_REASONS else "other"
        finish[reason] += 1
    return {
        "version": VERSION,
        "git_sha": None,
        "test_started_at": 0,
        "n_samples_issued": len(records),
        "n_samples_completed": completed,
        "n_samples_failed": completed - len(ok),
        "duration_ns": duration_ns or None,
        "state": "interrupted" if interrupted else "complete",
        "complete": not interrupted,
        "ttft": stat_block(ttft, tail=True),
        "tpot": stat_block(tpot, tail=True),
        "latency": stat_block(latency, tail=True),
        "output_sequence_lengths": stat_block(output, tail=False),
        "input_sequence_lengths": stat_block(list(prompt_tokens), tail=False),
        "legacy_loadgen_window_duration_ns": window_ns,
        "qps": (((completed - 1) if window_ns else completed) / seconds) if seconds else None,
        "tps": sum(output) / seconds if seconds and output else None,
        "finish_reason_counts": finish,
        "run_config": run_config,
    }
