"""sweep.json as types: what a sweep writes, and what the report, `sla --from-sweep` and the
command read back.

The file's shape is the contract (docs/sweep.md): written and read as every result file is
(json_file.ResultFile). What each figure means is decided in analysis/curve.py (DEFINITIONS,
written into the file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from client_sut.result_files.json_file import ResultFile, Stopped

FILE_NAME = "sweep.json"
SWEEP_VERSION = 1
# A point's keys that are there only where they apply (a point that measured nothing, one run
# again): absent, not null, elsewhere, as the file has always had them.
ONLY_WHERE_THEY_APPLY = ("reason", "resized_after")
LIMITS_FOR = "goodput"  # what the file's limits are for: always goodput


@dataclass(frozen=True, slots=True)
class Planned:
    passes: int
    queries: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class Resized:
    """A point that ended under its duration ran again, sized from the rate it served."""

    dir: str
    requests_per_s: float


@dataclass(frozen=True, slots=True)
class SweepPoint:
    name: str
    kind: str  # plan.CONCURRENCY, RATE, OFFLINE or SERVER
    concurrency: int | None = None
    target_qps: float | None = None
    region: str | None = None  # its Endpoints region: offline, ultra_low, low, medium, high
    dir: str | None = None  # none: it never ran
    exit_status: int | None = None
    wall_s: float | None = None
    planned: Planned | None = None
    failed: bool = False
    aborted: bool = False  # a server was lost during it: off the curve
    on_front: bool = False
    reason: str | None = None  # why it measured nothing, where it did not
    # Its figures (analysis.curve.point_figures): none where it measured nothing.
    requests: int | None = None
    errors: int | None = None
    output_tokens: int | None = None
    duration_s: float | None = None
    requests_per_s: float | None = None
    system_tokens_per_s: float | None = None
    tokens_per_s_per_user: float | None = None
    tokens_per_s_per_user_mean: float | None = None
    ttft_ms: dict | None = None  # {"p50", "p90", "p99"}
    tpot_ms: dict | None = None
    goodput: dict | None = None
    standard_errors: dict | None = None
    loadgen_result: str | None = None
    failed_requests: str | None = None
    client_bottleneck: bool = False
    mean_latency_s: float | None = None
    notes: tuple[str, ...] = ()
    resized_after: Resized | None = None

    @property
    def measured(self) -> bool:
        """It has figures to draw."""
        return self.system_tokens_per_s is not None


@dataclass(frozen=True, slots=True)
class Pilot:
    name: str
    dir: str
    exit_status: int | None = None
    requests_per_second: float | None = None
    mean_latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class SweepLimits:
    """The limits goodput counts within (written with `"for": "goodput"`)."""

    ttft_ms: float
    tpot_ms: float


@dataclass(frozen=True, slots=True)
class PlanSummary:
    points: tuple[str, ...] = ()
    point_duration_s: float | None = None
    dataset_samples: int | None = None
    regions: dict | None = None  # {"ultra_low", "low_end", "medium_end", "c_max"}


@dataclass(frozen=True, slots=True)
class SweepAccuracy:
    dir: str
    passed: bool
    gen_num: int | None = None
    rouge1: float | None = None
    rouge2: float | None = None
    rougeL: float | None = None  # noqa: N815 -- the name MLPerf gives it
    rougeLsum: float | None = None  # noqa: N815


@dataclass(frozen=True, slots=True)
class SweepResult(ResultFile):
    file_name = FILE_NAME
    command = "sweep"

    limits: SweepLimits
    version: int = SWEEP_VERSION
    definitions: dict = field(default_factory=dict)
    plan: PlanSummary = PlanSummary()
    compliant: bool = True
    compliance_notes: tuple[str, ...] = ()
    pilots: tuple[Pilot, ...] = ()
    points: tuple[SweepPoint, ...] = ()
    front: tuple[str, ...] = ()  # the Pareto front's point names
    step_function: tuple[tuple[float, float], ...] = ()
    verdict: str | None = None  # complete, failed_points, incomplete, interrupted, server_lost
    interrupted: bool = False
    aborted: Stopped | None = None
    accuracy: SweepAccuracy | None = None
    emit: dict = field(default_factory=dict)  # each layout's report (sweep/emit.py)
    elapsed_s: float | None = None

    def to_json(self) -> dict:
        data = ResultFile.to_json(self)
        data["limits"]["for"] = LIMITS_FOR
        data["points"] = [{key: value for key, value in point.items()
                           if value is not None or key not in ONLY_WHERE_THEY_APPLY}
                          for point in data["points"]]
        return data

    def point_figures(self) -> list[dict]:
        """Each point as sweep.json holds it: what analysis.noise compares, key by key."""
        return self.to_json()["points"]

    def measured(self) -> list[SweepPoint]:
        """The points with figures, in the order they ran."""
        return [p for p in self.points if p.measured]
