"""Which of a sweep's points fills each scenario of the MLPerf Inference v6.1 endpoints layout,
and what MLCommons' checker does not look at in it. Pure.

Offline is the Offline point. Server (Interactive) is the Poisson point with the most tokens/s
whose early-stopping p99s, as `performance/result_summary.json` states them, lie below that
scenario's official limits: the checker's own test (strictly below). With none below, Server holds
the Poisson point nearest the limits, so the checker says why it is refused; Interactive, which
the layout does not require, is then left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from client_sut.config import (
    OFFICIAL_LATENCY_LIMITS,
    OFFICIAL_MIN_DURATION_S,
    OFFICIAL_SAMPLE_COUNT,
    Scenario,
)

POISSON_KINDS = ("rate", "server")  # sweep.json's kinds of the points run as Server
DATASET_SAMPLES = OFFICIAL_SAMPLE_COUNT["datacenter"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A measured point as the layout sees it: its name, kind, tokens/s and ES p99s (ns)."""

    name: str
    kind: str
    tokens_per_s: float
    ttft_p99_ns: float | None
    tpot_p99_ns: float | None

    def load(self, scenario: Scenario) -> float:
        """The worse p99 as a share of its limit; infinite without an early-stopping bound."""
        if self.ttft_p99_ns is None or self.tpot_p99_ns is None:
            return float("inf")
        limits = OFFICIAL_LATENCY_LIMITS[scenario]
        return max(self.ttft_p99_ns / 1e6 / limits.ttft_ms, self.tpot_p99_ns / 1e6 / limits.tpot_ms)


def candidate(name: str, kind: str, summary: Mapping) -> Candidate:
    def p99(series: str) -> float | None:
        return (summary.get(series) or {}).get("early_stopping_percentiles", {}).get("99.0")
    return Candidate(name, kind, summary.get("tps") or 0.0, p99("ttft"), p99("tpot"))


def pick_scenarios(candidates: Sequence[Candidate]) -> dict[str, str]:
    """{scenario folder: point name}; Offline and Server whenever such points were measured."""
    picked = {}
    offline = [c for c in candidates if c.kind == "offline"]
    if offline:
        picked[Scenario.OFFLINE.value] = offline[0].name
    poisson = [c for c in candidates if c.kind in POISSON_KINDS]
    for scenario in (Scenario.SERVER, Scenario.INTERACTIVE):
        within = [c for c in poisson if c.load(scenario) < 1.0]
        if within:
            picked[scenario.value] = max(within, key=lambda c: c.tokens_per_s).name
        elif scenario == Scenario.SERVER and poisson:
            picked[scenario.value] = min(poisson, key=lambda c: c.load(scenario)).name
    return picked


def missed_by_checker(scenario: str, summary: Mapping, accuracy: Mapping) -> list[str]:
    """What the checker lets through in one scenario's files: the measured duration (it reads
    only config.yaml's setting), Llama-3.1-8B's accuracy (not gated in endpoints mode) and the
    dataset's size (skipped for a subset)."""
    findings = []
    measured_s = (summary.get("duration_ns") or 0) / 1e9
    if measured_s < OFFICIAL_MIN_DURATION_S:
        findings.append(f"{scenario}: measured for {measured_s:,.1f} s, under the official "
                        f"{OFFICIAL_MIN_DURATION_S} s (the checker reads only config.yaml's "
                        f"min_duration_ms)")
    if not accuracy.get("passed"):
        findings.append(f"{scenario}: accuracy below the targets (ROUGE >= 99% of "
                        f"{accuracy.get('category', 'datacenter')}'s, gen_len within 90-110%); "
                        f"the checker does not gate Llama-3.1-8B's accuracy in endpoints mode")
    if accuracy.get("gen_num") != DATASET_SAMPLES:
        findings.append(f"{scenario}: accuracy scored on {accuracy.get('gen_num', 0):,} samples, "
                        f"not the dataset's {DATASET_SAMPLES:,} (the checker ran with "
                        f"--skip-dataset-size-check)")
    return findings
