"""One probe judged: pass, fail or undecided, from what its run wrote. Pure functions.

LoadGen's own verdict decides a pass: VALID means both p99s are within the limits and its early
stopping proved them. A failed request counts as over both limits, never as a pass (LoadGen sees
a failed request's early completion as fast). A fail needs proof too: a run stopped early with a
limit lost, or enough queries over a limit that a true p99 within it is under 1% likely.
Anything between is undecided: the probe was too short to tell, and a longer one may.
"""

from __future__ import annotations

from dataclasses import dataclass

from client_sut.analysis.early_stopping import (
    MIN_QUERIES_TO_PASS,
    early_stopping_met,
    proven_over,
)
from client_sut.analysis.failures import failed_by_kind

PASS, FAIL, UNDECIDED = "pass", "fail", "undecided"
# Neither a pass nor a fail: a server stopped answering during the run, which measured nothing
# of the deployment (decided from the run's endpoints[].health, not from its latencies).
ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class ProbeFigures:
    """What one run measured, as far as its verdict needs (read from its results.json)."""

    target_qps: float
    queries: int
    result: str | None  # LoadGen's VALID/INVALID; None when LoadGen did not finish
    ttft_p99_ms: float | None
    tpot_p99_ms: float | None
    errors: int  # failed requests, not counting those an early stop cancelled
    over_ttft: int
    over_tpot: int
    early_stopping_met: bool | None
    invalid_reason: str | None
    stopped_early: dict | None  # {"constraint", "reason"}: a limit proven lost mid-run
    interrupted: bool
    client_bottleneck: str | None = None  # the headroom verdict, where the client was it

    @classmethod
    def from_results(cls, results: dict) -> ProbeFigures:
        loadgen, client = results["loadgen"], results["client"]
        goodput = client["goodput"]
        errors = sum(failed_by_kind(client).values())
        return cls(
            target_qps=results["settings"]["target_qps"],
            queries=loadgen.get("query_count") or client["issued"],
            result=loadgen["result"],
            ttft_p99_ms=loadgen["ttft_ms"]["p99"] or client["ttft_ms"]["p99"],
            tpot_p99_ms=loadgen["tpot_ms"]["p99"] or client["tpot_ms"]["p99"],
            errors=errors,
            over_ttft=goodput["over_ttft"],
            over_tpot=goodput["over_tpot"],
            early_stopping_met=loadgen["early_stopping_met"],
            invalid_reason=loadgen["invalid_reason"],
            stopped_early=results.get("stopped_early"),
            interrupted=results["interrupted"],
            client_bottleneck=headroom["verdict"] if (headroom := client.get("headroom"))
            and headroom["bottleneck"] else None,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str  # PASS, FAIL or UNDECIDED
    reason: str
    constraint: str | None  # what failed or came closest: "ttft", "tpot" or "errors"


def judge(figures: ProbeFigures) -> Verdict:
    n = figures.queries
    over = {"ttft": figures.over_ttft + figures.errors, "tpot": figures.over_tpot + figures.errors}
    closest = max(over, key=over.get)
    if figures.interrupted:
        return Verdict(UNDECIDED, "interrupted", None)
    if figures.stopped_early is not None:
        return Verdict(FAIL, f"stopped early: {figures.stopped_early['reason']}",
                       figures.stopped_early["constraint"])
    if proven_over(n, figures.errors):
        return Verdict(FAIL, f"{figures.errors} of {n} requests failed: more than 1% for sure",
                       "errors")
    for constraint, count in over.items():
        if proven_over(n, count):
            return Verdict(FAIL, f"{count} of {n} queries over the {constraint.upper()} limit"
                                 f"{_with_errors(figures.errors)}: the p99 is over it for sure "
                                 f"(99% confidence)", constraint)
    passed = figures.result == "VALID" and all(early_stopping_met(n, c) for c in over.values())
    if passed and figures.client_bottleneck:  # its latencies are partly the client's: no proof
        return Verdict(UNDECIDED, f"VALID, but {figures.client_bottleneck}", closest)
    if passed:
        return Verdict(PASS, f"VALID: {over['ttft']} over TTFT, {over['tpot']} over TPOT of {n} "
                             f"queries{_with_errors(figures.errors)}", closest)
    if n < MIN_QUERIES_TO_PASS:
        return Verdict(UNDECIDED, f"too short to pass: {n} queries, and LoadGen's early stopping "
                                  f"needs at least {MIN_QUERIES_TO_PASS} even with none over "
                                  f"the limits", closest)
    if figures.result is None:
        return Verdict(UNDECIDED, "LoadGen did not finish", closest)
    return Verdict(UNDECIDED, f"not yet decided: {over['ttft']} over TTFT, {over['tpot']} over "
                              f"TPOT of {n} queries{_with_errors(figures.errors)} (LoadGen: "
                              f"{figures.result}, {figures.invalid_reason or 'early stopping not met'})",
                   closest)


def _with_errors(errors: int) -> str:
    return f" (counting {errors} failed requests as over)" if errors else ""
