"""What each figure of the report shows, as plain data (pure functions; drawing is plots.py).

Times are the client's monotonic clock, shown in seconds from the run's first issue. Latencies
are the client's own (metrics.py): TTFT from the send to the first token-bearing event, TPOT per
request, ITL every gap between token events, E2E from the send to the end of the stream.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from client_sut.analysis.failures import failed_requests
from client_sut.analysis.metrics import (
    NS_PER_MS,
    e2e_ns,
    itl_ns,
    percentile,
    tpot_ns,
    ttft_ns,
)
from client_sut.records import RequestRecord
from client_sut.result_files.sla import SlaResult
from client_sut.result_files.sweep import SweepResult

CDF_POINTS = 400
BIN_S = 1.0
NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Cdf:
    name: str
    values_ms: tuple[float, ...]  # quantiles at `fractions`
    fractions: tuple[float, ...]
    count: int
    p50_ms: float | None
    p99_ms: float | None
    limit_ms: float | None  # the p99 limit the run is judged by, where it has one


def cdf(name: str, values_ns: Sequence[float], limit_ms: float | None,
        points: int = CDF_POINTS) -> Cdf:
    """The empirical CDF at `points` fractions, denser towards the tail (where p99 lives): a
    figure of fixed size however many values there are."""
    ordered = sorted(v / NS_PER_MS for v in values_ns)
    if not ordered:
        return Cdf(name, (), (), 0, None, None, limit_ms)
    # Fractions 1 - 10^-k spread evenly in k from 0 to 4 (p99.99), plus the median's half.
    half = points // 2
    fractions = sorted({i / half * 0.9 for i in range(half + 1)}
                       | {1 - 10 ** (-1 - 3 * i / half) for i in range(half + 1)} | {1.0})
    values = tuple(percentile(ordered, f * 100) for f in fractions)
    return Cdf(name, values, tuple(fractions), len(ordered), percentile(ordered, 50),
               percentile(ordered, 99), limit_ms)


def latency_cdfs(records: Sequence[RequestRecord], ttft_limit_ms: float | None,
                 tpot_limit_ms: float | None) -> list[Cdf]:
    ok = [r for r in records if r.ok]
    return [
        cdf("TTFT", [v for v in map(ttft_ns, ok) if v is not None], ttft_limit_ms),
        cdf("TPOT", [v for v in map(tpot_ns, ok) if v is not None], tpot_limit_ms),
        cdf("ITL", [gap for r in ok for gap in itl_ns(r)], None),
        cdf("E2E", [e2e_ns(r) for r in ok], None),
    ]


@dataclass(frozen=True, slots=True)
class Timeline:
    """Per 1 s bin from the run's first issue: bin starts (s), requests completed per second,
    output tokens per second (each token counted when its event arrived), requests in flight at
    the bin's middle, and the TTFT p50 and p99 of the requests sent in the bin."""
    t_s: tuple[float, ...]
    requests_per_s: tuple[int, ...]
    tokens_per_s: tuple[int, ...]
    in_flight: tuple[int, ...]
    ttft_p50_ms: tuple[float | None, ...]
    ttft_p99_ms: tuple[float | None, ...]
    ttft_limit_ms: float | None


def run_start_ns(records: Sequence[RequestRecord]) -> int:
    return min((r.issue_ns for r in records), default=0)


def timeline(records: Sequence[RequestRecord], ttft_limit_ms: float | None,
             bin_s: float = BIN_S) -> Timeline:
    if not records:
        return Timeline((), (), (), (), (), (), ttft_limit_ms)
    start = run_start_ns(records)
    end = max(r.end_ns for r in records)
    width = int(bin_s * NS_PER_S)
    bins = max(1, math.ceil((end - start) / width))

    def index(t: int) -> int:
        return min(bins - 1, max(0, (t - start) // width))

    completed, tokens = [0] * bins, [0] * bins
    ttfts: list[list[float]] = [[] for _ in range(bins)]
    for r in records:
        completed[index(r.end_ns)] += 1
        for t, n in zip(r.event_ns, r.event_tokens):
            if n:
                tokens[index(t)] += n
        ttft = ttft_ns(r) if r.ok else None
        if ttft is not None:
            ttfts[index(r.send_ns)].append(ttft / NS_PER_MS)
    issues = sorted(r.issue_ns for r in records)
    ends = sorted(r.end_ns for r in records)
    middles = [start + width * i + width // 2 for i in range(bins)]
    in_flight = tuple(bisect_right(issues, m) - bisect_right(ends, m) for m in middles)
    scale = 1 / bin_s
    return Timeline(
        tuple(i * bin_s for i in range(bins)),
        tuple(round(c * scale) for c in completed), tuple(round(t * scale) for t in tokens),
        in_flight,
        tuple(_pct(v, 50) for v in ttfts), tuple(_pct(v, 99) for v in ttfts), ttft_limit_ms)


@dataclass(frozen=True, slots=True)
class EjectionSpan:
    """An endpoint out of the balance, in seconds from the run's first issue."""
    endpoint: str
    from_s: float
    to_s: float


def ejection_spans(endpoints: Sequence[dict], start_ns: int) -> tuple[EjectionSpan, ...]:
    """Each ejection results.json holds (endpoints[].ejections), for the time axis."""
    return tuple(EjectionSpan(endpoint["url"], (e["ejected_ns"] - start_ns) / NS_PER_S,
                              (e["ejected_ns"] - start_ns) / NS_PER_S + e["out_s"])
                 for endpoint in endpoints for e in endpoint.get("ejections", ()))


def _pct(values: list[float], pct: float) -> float | None:
    return percentile(sorted(values), pct) if values else None


@dataclass(frozen=True, slots=True)
class EndpointRow:
    url: str
    requests: int
    errors: int
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    tpot_p50_ms: float | None
    tpot_p99_ms: float | None
    tokens_per_s: float
    extra: dict  # every other figure results.json holds for the endpoint (e.g. its replica)


_ENDPOINT_KEYS = {"url", "requests", "errors", "ttft_ms", "output_tokens", "server",
                  "output_tokens_per_second"}
_SHORT_TEXT = 40  # longer notes stay in results.json: a table cell is no place for them


def endpoint_rows(records: Sequence[RequestRecord], endpoints: Sequence[dict]) -> list[EndpointRow]:
    """One row per endpoint of results.json: an imbalance between them stands out."""
    span_s = _span_s(records)
    by_url: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        by_url[r.endpoint].append(r)
    rows = []
    for endpoint in endpoints:
        mine = by_url.get(endpoint["url"], [])
        ok = [r for r in mine if r.ok]
        ttft = sorted(v for v in map(ttft_ns, ok) if v is not None)
        tpot = sorted(v for v in map(tpot_ns, ok) if v is not None)
        extra = {k: v for k, v in endpoint.items() if k not in _ENDPOINT_KEYS
                 and (isinstance(v, (int, float, bool))
                      or isinstance(v, str) and len(v) <= _SHORT_TEXT)}
        if endpoint.get("ejections"):
            extra["s out of the balance"] = sum(e["out_s"] for e in endpoint["ejections"])
        rows.append(EndpointRow(
            endpoint["url"], len(mine), len(mine) - len(ok),
            _ms_pct(ttft, 50), _ms_pct(ttft, 99), _ms_pct(tpot, 50), _ms_pct(tpot, 99),
            sum(r.output_tokens for r in ok) / span_s if span_s else 0.0, extra))
    return rows


def _ms_pct(ordered: list[float], pct: float) -> float | None:
    return percentile(ordered, pct) / NS_PER_MS if ordered else None


def _span_s(records: Sequence[RequestRecord]) -> float:
    if not records:
        return 0.0
    return (max(r.end_ns for r in records) - min(r.send_ns for r in records)) / NS_PER_S


@dataclass(frozen=True, slots=True)
class ServerSeries:
    """One endpoint's scraped metrics on the run's time axis (s from its first issue)."""
    endpoint: str
    t_s: tuple[float, ...]
    running: tuple[float | None, ...]
    waiting: tuple[float | None, ...]
    kv_cache_pct: tuple[float | None, ...]
    generation_tokens_per_s: tuple[float | None, ...]  # between a scrape and the one before


def server_series(scrape_lines: Sequence[dict], start_ns: int) -> list[ServerSeries]:
    by_endpoint: dict[str, list[dict]] = defaultdict(list)
    for line in scrape_lines:
        if line.get("source") == "server" and "gauges" in line:
            by_endpoint[line["endpoint"]].append(line)
    series = []
    for endpoint, lines in by_endpoint.items():
        lines.sort(key=lambda line: line["t_ns"])
        t = [(line["t_ns"] + line["rtt_ns"] // 2 - start_ns) / NS_PER_S for line in lines]
        gauges = [line["gauges"] for line in lines]
        generated = [line["counters"].get("generation_tokens") for line in lines]
        rates: list[float | None] = [None]
        for i in range(1, len(lines)):
            a, b = generated[i - 1], generated[i]
            dt = t[i] - t[i - 1]
            rates.append((b - a) / dt if a is not None and b is not None and dt > 0 else None)
        kv = [g.get("kv_cache_usage") for g in gauges]
        series.append(ServerSeries(
            endpoint, tuple(t), tuple(g.get("running") for g in gauges),
            tuple(g.get("waiting") for g in gauges),
            tuple(None if v is None else v * 100 for v in kv), tuple(rates)))
    return series


@dataclass(frozen=True, slots=True)
class SlaPoint:
    target_qps: float
    ttft_p99_ms: float | None
    tpot_p99_ms: float | None
    tokens_per_s: float | None
    verdict: str  # pass | fail | undecided | aborted
    confirmation: bool
    duration_s: float | None = None  # the least duration it was asked to run
    requests: int | None = None
    reason: str = ""  # why its verdict is what it is (sla.json's words)
    # The limit ("ttft", "tpot" or "errors") proven lost mid-run, which stopped it: its p99 over
    # the completed requests leaves out those still waiting past the limit, so it is not shown.
    lost: str | None = None

    def shown_p99(self, constraint: str) -> float | None:
        """The p99 to show for "ttft" or "tpot": None where the run was stopped for it."""
        if self.lost in (constraint, "errors"):
            return None
        return self.ttft_p99_ms if constraint == "ttft" else self.tpot_p99_ms


def sla_points(sla: SlaResult, tokens_per_s: dict[str, float | None]) -> list[SlaPoint]:
    """Each probe (and the confirmation run) of an sla.json; tokens/s from its run folder."""
    runs = [(p, False) for p in sla.probes] + [(sla.confirmation, True)] * bool(sla.confirmation)
    return [SlaPoint(p.target_qps, p.ttft_p99_ms, p.tpot_p99_ms, tokens_per_s.get(p.dir or ""),
                     p.verdict, confirmation, p.duration_s, p.requests, p.reason,
                     p.constraint if p.stopped_early else None)
            for p, confirmation in runs]


def goodput_sentence(goodput: dict | None) -> str:
    """Goodput at the answer, in words."""
    if not goodput:
        return "goodput: none measured at a confirmed answer"
    share = goodput.get("share")
    return (f"goodput at the answer: {goodput['requests_within_limits']:,} requests within both "
            f"limits ({'-' if share is None else f'{share:.1%}'} of them), "
            f"{goodput['requests_per_second']:g} per second; {goodput['over_ttft']:,} over the "
            f"TTFT limit, {goodput['over_tpot']:,} over the TPOT limit, {goodput['errors']:,} "
            f"failed")


@dataclass(frozen=True, slots=True)
class Verdict:
    headline: str  # VALID, INVALID, INTERRUPTED, or the accuracy/audit verdict
    ok: bool
    reasons: tuple[str, ...]


def run_verdict(results: dict) -> Verdict:
    """The report's first line: LoadGen's verdict and, when it is not plainly good, why."""
    loadgen, client = results["loadgen"], results["client"]
    failed = failed_requests(client, results.get("endpoints", ()))
    reasons = [failed] if failed else []  # first: LoadGen's verdict does not know of them
    if results.get("interrupted"):
        reasons.append("the run was interrupted: partial results")
    result = loadgen.get("result") or "no LoadGen result"
    if loadgen.get("invalid_reason"):
        reasons.append(f"LoadGen: {loadgen['invalid_reason']}")
    for key, text in (("min_duration_met", "min duration"), ("min_queries_met", "min queries"),
                      ("early_stopping_met", "early stopping"),
                      ("perf_constraints_met", "latency constraints")):
        if loadgen.get(key) is False:
            reasons.append(f"{text} not met")
    for figure, limit in (("ttft_ms", "ttft_limit_ms"), ("tpot_ms", "tpot_limit_ms")):
        p99, bound = loadgen.get(figure, {}).get("p99"), loadgen.get(limit)
        if p99 is not None and bound is not None and p99 > bound:
            reasons.append(f"{figure[:4].upper()} p99 {p99:,.1f} ms is over the limit "
                           f"{bound:,.0f} ms")
    reasons += [f"LoadGen error: {e}" for e in loadgen.get("errors", [])]
    ok = result == "VALID" and not client.get("errors") and not results.get("interrupted")
    for name in ("accuracy", "audit"):
        verdict = results.get(name)
        if verdict is not None and not verdict.get("passed"):
            ok = False
            reasons.append(f"{name} failed")
    headline = ("INTERRUPTED" if results.get("interrupted")
                else f"FAILED REQUESTS (LoadGen {result})" if failed else result)
    return Verdict(headline, ok, tuple(reasons))


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run's headline figures, for putting several side by side."""
    label: str
    scenario: str
    result: str
    ttft_p99_ms: float | None
    tpot_p99_ms: float | None
    tokens_per_s: float | None
    requests: int
    errors: int


def run_row(label: str, results: dict) -> RunRow:
    loadgen, client = results["loadgen"], results["client"]
    return RunRow(label, results["scenario"], loadgen.get("result") or "-",
                  loadgen["ttft_ms"].get("p99") or client["ttft_ms"].get("p99"),
                  loadgen["tpot_ms"].get("p99") or client["tpot_ms"].get("p99"),
                  loadgen.get("tokens_per_second") or client.get("output_tokens_per_second"),
                  client["requests"], client["errors"])



@dataclass(frozen=True, slots=True)
class SweepPoint:
    name: str
    concurrency: int | None
    target_qps: float | None
    system_tokens_per_s: float | None
    tokens_per_s_per_user: float | None
    ttft_p90_ms: float | None
    requests_per_s: float | None
    goodput_per_s: float | None
    on_front: bool


def sweep_points(sweep: SweepResult) -> list[SweepPoint]:
    """The measured points of a sweep.json, in order."""
    return [SweepPoint(p.name, p.concurrency, p.target_qps, p.system_tokens_per_s,
                       p.tokens_per_s_per_user, p.ttft_ms["p90"], p.requests_per_s,
                       (p.goodput or {}).get("requests_per_second"), p.on_front)
            for p in sweep.measured()]
