"""sla.json as types: what a search writes, and what the report and the command read back.

The file's shape is the contract (docs/sla.md): written and read as every result file is
(json_file.ResultFile).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from client_sut.result_files.json_file import ResultFile, Stopped

FILE_NAME = "sla.json"


@dataclass(frozen=True, slots=True)
class SlaLimits:
    ttft_ms: float
    tpot_ms: float
    official: bool = True
    percentile: int = 99


@dataclass(frozen=True, slots=True)
class SelfCheck:
    """The client's own delays in one run (its results.json's self_check, in part)."""

    issue_lag_ms: dict = field(default_factory=dict)
    event_loop_lag_ms: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Probe:
    """One LoadGen Server run of the search at a target rate: a probe, a confirmation attempt,
    or one that a server lost aborted (verdict `aborted`, measuring nothing)."""

    target_qps: float
    dir: str | None
    verdict: str  # verdict.PASS, FAIL, UNDECIDED or ABORTED
    reason: str
    constraint: str | None = None  # what failed or came closest: "ttft", "tpot" or "errors"
    duration_s: float | None = None
    size: str | None = None  # "short" or "confirmation"; none for a confirmation attempt
    exit_status: int | None = None
    wall_s: float | None = None
    requests: int = 0
    result: str | None = None  # LoadGen's VALID/INVALID
    failed_requests: str | None = None  # "3 of 1,200 requests failed: ..." where any did
    ttft_p99_ms: float | None = None
    tpot_p99_ms: float | None = None
    errors: int | None = None
    over_ttft: int | None = None
    over_tpot: int | None = None
    early_stopping_met: bool | None = None
    stopped_early: bool = False
    interrupted: bool = False
    server_lost: bool = False
    tokens_per_second: float | None = None
    goodput: dict | None = None
    self_check: SelfCheck | None = None


@dataclass(frozen=True, slots=True)
class StartPoint:
    """One short Offline-issue run of the start curve."""

    dir: str
    concurrency: int | None = None  # none: everything in flight
    offline_samples_per_second: float | None = None
    server_lost: bool = False
    verdict: str | None = None  # `aborted` where a server was lost during it
    reason: str | None = None
    constraint: str | None = None
    requests_per_s: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p99_ms: float | None = None
    mean_latency_s: float | None = None


@dataclass(frozen=True, slots=True)
class Start:
    qps: float | None = None
    rule: str = ""  # how qps was found
    offline_samples_per_second: float | None = None
    dir: str | None = None
    points: tuple[StartPoint, ...] = ()
    aborted: tuple[StartPoint, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchSettings:
    tolerance: float
    probe_duration_s: float
    probe_queries: int
    confirm_duration_s: float
    max_probes: int
    attempts_per_rate: int
    wait_for_server_s: float | None = None


@dataclass(frozen=True, slots=True)
class SlaResult(ResultFile):
    file_name = FILE_NAME
    command = "sla"

    scenario: str
    limits: SlaLimits
    answer_qps: float | None = None
    confirmed: bool = False
    lowest_failing_qps: float | None = None
    binding_constraint: str | None = None
    goodput: dict | None = None
    compliant: bool = True
    compliance_notes: tuple[str, ...] = ()
    search: SearchSettings | None = None
    start: Start = Start()
    probes: tuple[Probe, ...] = ()
    confirmation: Probe | None = None
    confirmation_attempts: tuple[Probe, ...] = ()
    self_check: SelfCheck | None = None
    interrupted: bool = False
    aborted: Stopped | None = None
    elapsed_s: float | None = None

    def runs(self) -> list[Probe]:
        """Each probe, and the confirmation where there was one."""
        return [*self.probes, *([self.confirmation] if self.confirmation else [])]

    def answer_line(self) -> str:
        limits = self.limits
        sla_words = (f"the {self.scenario} SLA (TTFT p99 <= {limits.ttft_ms:g} ms, TPOT p99 <= "
                     f"{limits.tpot_ms:g} ms"
                     f"{'' if limits.official else ', not the official limits'})")
        failed = self.confirmed and self.confirmation and self.confirmation.failed_requests
        if failed:
            return (f"FAILED: {failed} in the confirmation at {self.answer_qps:g} queries/s, "
                    f"though LoadGen called it VALID within {sla_words}")
        if self.confirmed:
            return (f"this deployment serves {self.answer_qps:g} queries/s within {sla_words}, "
                    f"confirmed VALID")
        if self.interrupted:
            return f"interrupted: no confirmed answer yet for {sla_words}"
        if self.aborted:
            return f"{self.aborted.reason}; no answer for {sla_words}"
        return f"no rate was confirmed VALID within {sla_words}"
