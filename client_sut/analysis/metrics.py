"""Metrics as pure functions over request records. Each metric is defined once, here.

Definitions (times in ns from the client's monotonic clock):
- TTFT: first event carrying at least one output token, minus send time.
- TTFB: response headers, minus send time.
- TPOT: (last token event - first token event) / (output tokens - 1), per request, where output
  tokens is the server's count. Requests with fewer than 2 tokens have no TPOT.
- ITL: every gap between consecutive token-bearing events (not a per-request mean).
- E2E: end of stream minus send time.
- Issue lag: the moment the client asked for a connection minus the moment LoadGen handed the
  sample over (the client's own delay, and in Offline the wait for a stream slot).
- Connect: send time minus the moment the client asked for a connection: ~0 on a kept-alive
  one, else the time to open one (a server slow to accept connections shows here).
- Judged TTFT and TPOT: the latencies LoadGen holds a request to its p99 limits by, from the
  client's stamps: TTFT from LoadGen's issue to the first token reported to LoadGen, TPOT from
  that report to the end of the stream per further token. The client stamps each before LoadGen
  is told, so a request over a limit here is over it in LoadGen's figures too.
- Goodput: requests that did not fail and kept both p99 limits, per second of the client's span.
Percentiles use linear interpolation between closest ranks (numpy's default, "type 7").
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from client_sut.analysis.failures import error_examples
from client_sut.analysis.token_accounting import token_accounting
from client_sut.records import RequestRecord

NS_PER_MS = 1_000_000
SUMMARY_PERCENTILES = (50, 90, 99)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks; `sorted_values` must be sorted, non-empty."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = (len(sorted_values) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def summarize_ms(values_ns: Iterable[float]) -> dict[str, float | None]:
    """p50/p90/p99/mean/max in milliseconds; all None when there are no values."""
    return summarize_sorted_ms(sorted(values_ns))


def summarize_sorted_ms(ordered: Sequence[float], mean_ns: float | None = None,
                        max_ns: float | None = None) -> dict[str, float | None]:
    """As `summarize_ms`, of values already in order: any sequence read by rank (a histogram's
    view, measure/selfcheck.py), with the mean and maximum given where they are known exactly."""
    keys = [f"p{p}" for p in SUMMARY_PERCENTILES] + ["mean", "max"]
    if not len(ordered):
        return dict.fromkeys(keys)
    summary = {f"p{p}": percentile(ordered, p) for p in SUMMARY_PERCENTILES}
    summary["mean"] = sum(ordered) / len(ordered) if mean_ns is None else mean_ns
    summary["max"] = ordered[-1] if max_ns is None else max_ns
    return {k: round(v / NS_PER_MS, 4) for k, v in summary.items()}


def first_token_ns(record: RequestRecord) -> int | None:
    for t, n in zip(record.event_ns, record.event_tokens):
        if n > 0:
            return t
    return None


def ttft_ns(record: RequestRecord) -> int | None:
    first = first_token_ns(record)
    return None if first is None else first - record.send_ns


def ttfb_ns(record: RequestRecord) -> int | None:
    return None if record.first_byte_ns is None else record.first_byte_ns - record.send_ns


def last_token_ns(record: RequestRecord) -> int | None:
    for t, n in zip(reversed(record.event_ns), reversed(record.event_tokens)):
        if n > 0:
            return t
    return None


def tpot_ns(record: RequestRecord) -> float | None:
    first, n_tokens = first_token_ns(record), record.output_tokens
    if first is None or n_tokens < 2:
        return None
    return (last_token_ns(record) - first) / (n_tokens - 1)


def itl_ns(record: RequestRecord) -> list[int]:
    times = record.token_event_times()
    return [b - a for a, b in zip(times, times[1:])]


def e2e_ns(record: RequestRecord) -> int:
    return record.end_ns - record.send_ns


def issue_lag_ns(record: RequestRecord) -> int:
    start = record.send_ns if record.connect_ns is None else record.connect_ns
    return start - record.issue_ns


def connect_ns(record: RequestRecord) -> int:
    return 0 if record.connect_ns is None else record.send_ns - record.connect_ns


def judged_ttft_ns(record: RequestRecord) -> int | None:
    first = record.first_reported_ns or first_token_ns(record)  # Offline reports no first token
    return None if first is None else first - record.issue_ns


def judged_tpot_ns(record: RequestRecord) -> float | None:
    first = record.first_reported_ns or first_token_ns(record)
    n_tokens = record.output_tokens
    return None if first is None or n_tokens < 2 else (record.end_ns - first) / (n_tokens - 1)


def over_limits(record: RequestRecord, ttft_limit_ns: float | None,
                tpot_limit_ns: float | None, from_send: bool = False) -> tuple[bool, bool]:
    """Whether a finished request broke the TTFT and the TPOT limit (None: no such limit), as
    LoadGen judges it, or `from_send`: by the client's own TTFT and TPOT, from the send (at a
    fixed concurrency a request waits for its slot before it is sent, which is no latency of
    the deployment's)."""
    if from_send:
        ttft, tpot = ttft_ns(record), tpot_ns(record)
    else:
        ttft, tpot = judged_ttft_ns(record), judged_tpot_ns(record)
    return (ttft_limit_ns is not None and ttft is not None and ttft > ttft_limit_ns,
            tpot_limit_ns is not None and tpot is not None and tpot > tpot_limit_ns)


def goodput(records: Sequence[RequestRecord], ttft_limit_ms: float | None,
            tpot_limit_ms: float | None, from_send: bool = False) -> dict:
    """Requests that did not fail and kept both limits: how many, their share, and per second
    of the client's span. Without limits (Offline) every request that did not fail counts."""
    ttft_limit_ns = None if ttft_limit_ms is None else ttft_limit_ms * NS_PER_MS
    tpot_limit_ns = None if tpot_limit_ms is None else tpot_limit_ms * NS_PER_MS
    over_ttft = over_tpot = good = 0
    for record in records:
        if not record.ok:
            continue
        slow_first, slow_tokens = over_limits(record, ttft_limit_ns, tpot_limit_ns, from_send)
        over_ttft += slow_first
        over_tpot += slow_tokens
        good += not (slow_first or slow_tokens)
    span_s = run_span_ns(records) / 1e9
    return {
        "ttft_limit_ms": ttft_limit_ms,
        "tpot_limit_ms": tpot_limit_ms,
        "requests_within_limits": good,
        "share": round(good / len(records), 6) if records else None,
        "requests_per_second": round(good / span_s, 3) if span_s else 0.0,
        "over_ttft": over_ttft,
        "over_tpot": over_tpot,
        "errors": sum(1 for r in records if not r.ok),
    }


def run_span_ns(records: Sequence[RequestRecord]) -> int:
    return (max(r.end_ns for r in records) - min(r.send_ns for r in records)) if records else 0


def _present(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]


# What a one-token answer reports, decided here once. LoadGen derives TPOT as
# (latency - TTFT) / (n_tokens - 1): for n_tokens 1 it logs an error_runtime line, counts the
# sample as 0 tokens and gives it a TPOT of TTFT - latency (zero or less), with no effect on
# VALID. MLPerf's reference SUTs report len(output ids) as they are, so they meet the same; we
# report the true count too, never a padded one (TEST06 holds token_count to the ids logged).
ONE_TOKEN_LOADGEN = ("LoadGen logs 'error_runtime: Number of tokens need to be greater than 1' "
                     "for each, counts it as 0 tokens and gives it a TPOT of TTFT minus latency "
                     "(zero or less), as it would for MLPerf's reference implementation")


def one_token_answers(records: Sequence[RequestRecord]) -> dict:
    """Answers of exactly one token (an EOS drawn first where min_tokens is ignored): reported
    to LoadGen with their true count; no TPOT of the client's (it needs two tokens)."""
    single = [r for r in records if r.ok and r.output_tokens == 1]
    return {"count": len(single),
            "samples": sorted({r.sample_index for r in single})[:20],
            "finish_reasons": dict(Counter(r.finish_reason or "none" for r in single)),
            "reported_tokens": 1, "client_tpot": "none: excluded from tpot_ms",
            "loadgen": ONE_TOKEN_LOADGEN}


def client_summary(records: Sequence[RequestRecord]) -> dict:
    """The client's own figures for a run: the cross-check of LoadGen's."""
    ok = [r for r in records if r.ok]
    output_tokens = sum(r.output_tokens for r in ok)
    span_ns = run_span_ns(records)
    errors_by_kind = Counter(r.error.kind.value for r in records if r.error is not None)
    return {
        "requests": len(records),
        "errors": len(records) - len(ok),
        "errors_by_kind": dict(sorted(errors_by_kind.items())),
        "error_examples": error_examples(records),
        "output_tokens": output_tokens,
        "output_tokens_per_second": round(output_tokens / (span_ns / 1e9), 3) if span_ns else 0.0,
        "requests_per_second": round(len(ok) / (span_ns / 1e9), 3) if span_ns else 0.0,
        "ttft_ms": summarize_ms(_present(ttft_ns(r) for r in ok)),
        "ttfb_ms": summarize_ms(_present(ttfb_ns(r) for r in ok)),
        "tpot_ms": summarize_ms(_present(tpot_ns(r) for r in ok)),
        "itl_ms": summarize_ms(gap for r in ok for gap in itl_ns(r)),
        "e2e_ms": summarize_ms(e2e_ns(r) for r in ok),
        "issue_lag_ms": summarize_ms(issue_lag_ns(r) for r in records),
        "connect_ms": summarize_ms(connect_ns(r) for r in records),
        "short_responses": sum(1 for r in ok if r.output_tokens < 2),
        "one_token_answers": one_token_answers(records),
        "token_count_mismatches": sum(
            1 for r in ok
            if r.server_completion_tokens is not None
            and r.server_completion_tokens != r.streamed_tokens
        ),
        "token_id_sources": dict(Counter(r.token_id_source.value for r in records)),
        "token_accounting": token_accounting(records),
        "percentile_method": "linear interpolation between closest ranks",
    }


def endpoint_summaries(records: Sequence[RequestRecord], urls: Sequence[str]) -> list[dict]:
    """Per endpoint (replica); its tokens/s are over the whole run's span, so they add up to the
    client's."""
    span_ns = run_span_ns(records)
    summaries = []
    for url in urls:
        mine = [r for r in records if r.endpoint == url]
        ok = [r for r in mine if r.ok]
        output_tokens = sum(r.output_tokens for r in ok)
        summaries.append({
            "url": url,
            "requests": len(mine),
            "errors": len(mine) - len(ok),
            "ttft_ms": summarize_ms(_present(ttft_ns(r) for r in ok)),
            "tpot_ms": summarize_ms(_present(tpot_ns(r) for r in ok)),
            "output_tokens": output_tokens,
            "output_tokens_per_second":
                round(output_tokens / (span_ns / 1e9), 3) if span_ns else 0.0,
        })
    return summaries
