"""Do the replicas serve alike? Their load and latency, compared by tests that tell a real
difference from chance, for results.json `replica_balance` and its warnings.

- Load: requests per replica against equal shares, Pearson's chi-square. The dispatcher sends
  each request to the replica with the fewest in flight, so a replica that holds its requests
  longer (slower, or stalled) gets fewer: an uneven share is a symptom, not a balancing choice.
- Latency: each replica's TTFT and TPOT against the pooled values of all the others,
  Mann-Whitney U (rank based: latencies are skewed and heavy-tailed, and it assumes no shape).

A difference is flagged only when it is both significant, at ALPHA after a Bonferroni
correction for the number of comparisons, and large enough to matter (shares or medians apart
by more than the bounds below): over thousands of requests a trivial difference is significant
too, and over a few dozen a large one may still be chance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import median

from client_sut.analysis.metrics import NS_PER_MS, tpot_ns, ttft_ns
from client_sut.analysis.stats import chi_square_uniform, mann_whitney
from client_sut.records import RequestRecord

ALPHA = 0.001
SHARE_BOUND = 0.2  # a replica's share of requests off the even share by more than 20 % of it
MEDIAN_RATIO_BOUND = 1.25  # a replica's median over (or under) the others' by more than 25 %
MIN_REQUESTS = 20  # fewer successful requests on a replica: too few to compare its latency

LATENCIES: dict[str, Callable[[RequestRecord], float | None]] = {"ttft": ttft_ns,
                                                                 "tpot": tpot_ns}


def _values(records: Sequence[RequestRecord], metric: str) -> list[float]:
    measure = LATENCIES[metric]
    return [v for v in (measure(r) for r in records) if v is not None]


def _load(by_url: dict[str, list[RequestRecord]], tests: int) -> tuple[dict, list[str]]:
    counts = [len(records) for records in by_url.values()]
    total = sum(counts)
    even = total / len(counts)
    test = chi_square_uniform(counts)
    worst = max(abs(c - even) / even for c in counts)
    uneven = test.p_value < ALPHA / tests and worst > SHARE_BOUND
    shares = {url: round(c / total, 4) for url, c in zip(by_url, counts)}
    result = {"shares": shares, "chi_square": round(test.statistic, 3),
              "p_value": test.p_value, "uneven": uneven}
    warnings = []
    if uneven:
        listed = ", ".join(f"{url} {share:.0%}" for url, share in shares.items())
        warnings.append(f"replicas' request shares differ more than chance explains (chi-square "
                        f"p={test.p_value:.1e}): {listed}; the dispatcher favours the replica "
                        f"with the fewest in flight, so a slow or failing replica gets fewer")
    return result, warnings


def _latency(by_url: dict[str, list[RequestRecord]], metric: str,
             tests: int) -> tuple[list[dict], list[str]]:
    values = {url: _values([r for r in records if r.ok], metric)
              for url, records in by_url.items()}
    rows, warnings = [], []
    for url, mine in values.items():
        others = [v for other, vs in values.items() if other != url for v in vs]
        if len(mine) < MIN_REQUESTS or len(others) < MIN_REQUESTS:
            rows.append({"url": url, "compared": False,
                         "reason": f"fewer than {MIN_REQUESTS} measured requests"})
            continue
        test = mann_whitney(mine, others)
        mine_ms, others_ms = median(mine) / NS_PER_MS, median(others) / NS_PER_MS
        ratio = mine_ms / others_ms if others_ms > 0 else float("inf")
        differs = test.p_value < ALPHA / tests and (
            ratio > MEDIAN_RATIO_BOUND or ratio < 1 / MEDIAN_RATIO_BOUND)
        rows.append({"url": url, "compared": True, "median_ms": round(mine_ms, 4),
                     "others_median_ms": round(others_ms, 4), "ratio": round(ratio, 3),
                     "p_value": test.p_value, "differs": differs})
        if differs:
            warnings.append(f"replica {url} has median {metric.upper()} {mine_ms:,.2f} ms against "
                            f"{others_ms:,.2f} ms on the others ({ratio:.2f}x, Mann-Whitney "
                            f"p={test.p_value:.1e}): it does not serve like them")
    return rows, warnings


def replica_balance(records: Sequence[RequestRecord], urls: Sequence[str]) -> dict | None:
    """The comparison of two or more replicas (None for one endpoint)."""
    if len(urls) < 2 or not records:
        return None
    by_url = {url: [r for r in records if r.endpoint == url] for url in urls}
    # One load test, and one latency test per replica and metric.
    tests = 1 + len(urls) * len(LATENCIES)
    load, warnings = _load(by_url, tests)
    result = {"method": "chi-square on request counts against equal shares; Mann-Whitney U of "
                        "each replica's TTFT and TPOT against the other replicas' pooled; "
                        f"flagged when p < {ALPHA:g}/{tests} (Bonferroni) and shares differ by "
                        f"over {SHARE_BOUND:.0%} or medians by over {MEDIAN_RATIO_BOUND}x",
              "requests": load}
    for metric in LATENCIES:
        result[f"{metric}_ms"], found = _latency(by_url, metric, tests)
        warnings += found
    result["warnings"] = warnings
    return result
