"""`client-sut sweep`: the throughput-interactivity curve, one real LoadGen run per point.
I/O and orchestration; what each figure means is `analysis/curve.py`, what runs is `plan.py`.

A concurrency sweep starts with two short pilots: Offline, everything in flight, for the most
the points will serve, and concurrency 1 for the latency no point can beat; each
point's size is then predicted from them and from the points below it. Every point is a
`client-sut run` process of its own, in its own folder as `run` writes it, with its MLPerf
Endpoints files beside (endpoints_files.py); sweep.json is rewritten after each. Ctrl-C
ends the point under way (what it measured is kept) and the sweep; a server that stops
answering ends it too (exit 3), with the points measured and the reason.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace

from client_sut.analysis.curve import (
    DEFINITIONS,
    ULTRA_LOW_MAX,
    CurvePoint,
    LoadPoint,
    Regions,
    min_duration_s,
    pareto_front,
    point_figures,
    predicted_server_rate,
    regions,
    round_rate,
    step_function,
)
from client_sut.analysis.early_stopping import min_passing
from client_sut.analysis.failures import failed_requests
from client_sut.config import OFFICIAL_LATENCY_LIMITS, Scenario
from client_sut.data.token_cache import cached_prompt_lengths
from client_sut.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    RunStopped,
)
from client_sut.requests_file import read_requests
from client_sut.result_files.sweep import (
    Pilot,
    Planned,
    PlanSummary,
    Resized,
    Stopped,
    SweepAccuracy,
    SweepLimits,
    SweepPoint,
    SweepResult,
)
from client_sut.runs.child import RunOutput, Series
from client_sut.runs.runner import prepare_output_dir
from client_sut.runs.series import Say
from client_sut.runs.server_guard import ServerGuard
from client_sut.sweep.emit import (
    V1_FOLDER,
    V61_FOLDER,
    EmitTarget,
    prepare_emit,
    write_v1,
    write_v61,
)
from client_sut.sweep.endpoints_files import write_point_files
from client_sut.sweep.plan import (
    CONCURRENCY,
    EMIT_V1,
    EMIT_V61,
    OFFLINE,
    PILOT_LATENCY_QUERIES,
    RATE,
    RATE_MARGIN,
    SERVER,
    Point,
    SweepPlan,
    compliance_notes,
    point_args,
    point_size,
    predicted_rate,
)

TOKEN_CACHE = "tokens.msgpack"
SHORT_RUN_SUFFIX = "-too-short"  # a point's first run, when it ended before its duration
# A Server point runs this share of the rate the curve predicts: a closed loop meets no Poisson
# bursts, so a Server run's edge lies at or below the prediction.
SERVER_POINT_SHARE = 0.9
# A Server point the v6.1 layout may hold certifies its p99s by early stopping: 662 queries.
ES_P99_QUERIES = min_passing(1, 0.99) + 1


@dataclass
class _State(Series):
    sweep: SweepResult | None = None  # what sweep.json says so far
    offline_qps: float | None = None  # the Offline pilot's samples/s
    latency_below: tuple[int, float] | None = None  # (concurrency, mean latency s) measured

    def update(self, **changes) -> None:
        self.sweep = replace(self.sweep, **changes)


def run_sweep(plan: SweepPlan, say: Say) -> tuple[SweepResult, int]:
    """sweep.json's content and the exit status; sweep.json is rewritten after every run."""
    prepare_output_dir(plan.output_dir)
    target = prepare_emit(plan.system_file, plan.checker, plan.division, plan.endpoints,
                          plan.output_dir) if plan.emit else None
    state = _State(plan.run_args, plan.output_dir / TOKEN_CACHE, sweep=_skeleton(plan))
    state.guard = ServerGuard(plan.endpoints, plan.credentials, None, say,
                              lambda: state.interrupted)
    with state.signals_forwarded():
        try:
            status = _sweep(plan, state, say)
            if target is not None and state.sweep.points and not state.interrupted:
                status = max(status, _emit(plan, state, target, say))
        except RunStopped as stop:  # a server gone: the points measured stand, no more are run
            state.update(aborted=Stopped(stop.during, stop.reason))
            say(f"the sweep stops (exit {stop.exit_status}): {stop.reason}")
            status = stop.exit_status
    state.update(interrupted=state.interrupted, elapsed_s=state.elapsed_s)
    failed = tuple(f"{p.name}: {p.failed_requests}" for p in state.sweep.points
                   if p.failed_requests)
    if failed:  # said first: those points did not measure the deployment
        state.update(compliance_notes=failed + state.sweep.compliance_notes, compliant=False)
    state.update(verdict=_verdict(state.sweep))
    state.sweep.write(plan.output_dir)
    return state.sweep, EXIT_INTERRUPTED if state.interrupted else status


def _sweep(plan: SweepPlan, state: _State, say: Say) -> int:
    if any(point.kind != RATE for point in plan.points) and not _pilots(plan, state, say):
        return EXIT_INTERRUPTED if state.interrupted else EXIT_FAILED
    status = EXIT_OK
    for point in plan.points:
        if state.interrupted:
            break
        duration = plan.duration_s(point)
        rate = _rate(point, state)
        if rate is None:
            skipped = _skipped(point, state.sweep)
            state.update(points=(*state.sweep.points, skipped))
            _write(plan, state)
            say(f"{point.name}: {skipped.reason}")
            status = EXIT_FAILED
            continue
        record, output, lost = _run_point(plan, point, rate, duration, state, say)
        if _ran_short(point, output, record, lost, state):
            # An Offline issue's size is fixed before it starts, from a prediction: a point
            # that served faster ended before its duration. Sized from its own rate it runs
            # once more, and the short run is kept beside it.
            short = f"{point.name}{SHORT_RUN_SUFFIX}"
            shutil.rmtree(plan.output_dir / short, ignore_errors=True)  # an earlier sweep's
            (plan.output_dir / point.name).rename(plan.output_dir / short)
            served = record.requests_per_s
            say(f"{point.name}: served {served:g} queries/s and ended under its {duration:g} s: "
                f"sized again from that rate (the short run is kept in {short})")
            record, output, lost = _run_point(plan, point, served * RATE_MARGIN, duration,
                                              state, say)
            record = replace(record, resized_after=Resized(short, served))
        if lost is not None:  # it measured no deployment: kept, but off the curve
            record = replace(record, aborted=True, reason=lost)
        state.update(points=(*state.sweep.points, record))
        state.sweep = _with_front(state.sweep)
        _write(plan, state)
        if lost is not None:
            raise RunStopped(lost, point.name)
        say(f"{point.name}: {_summary(record)}")
        if record.failed:
            status = EXIT_FAILED
        if point.kind == CONCURRENCY and record.mean_latency_s:
            state.latency_below = (point.concurrency, record.mean_latency_s)
    return status


def _run_point(plan: SweepPlan, point: Point, rate: float, duration: float, state: _State,
               say: Say) -> tuple[SweepPoint, RunOutput, str | None]:
    """One point's run, sized for its rate: its record, its output, and why it measured no
    deployment (a server lost), if it did not."""
    server = point.kind in (RATE, SERVER)
    passes, queries = point_size(rate, duration, plan.dataset_samples, ES_P99_QUERIES
                                 if server and EMIT_V61 in plan.emit else 1)
    args = point_args(point, rate, queries, duration, len(plan.endpoints))
    output = state.launch(plan.output_dir / point.name, point.name, args, lambda: say(
        f"{point.name}: {_describe(point, rate)}, {queries} queries ({passes} passes over the "
        f"dataset), at least {duration:g} s"))
    record = _point_record(plan, point, output, rate, passes, queries, duration)
    return record, output, state.guard.lost(output.results, output.exit_status, point.name)


def _ran_short(point: Point, output: RunOutput, record: SweepPoint, lost: str | None,
               state: _State) -> bool:
    """An Offline-issue point that ended before its duration with nothing else wrong."""
    loadgen = (output.results or {}).get("loadgen") or {}
    return (point.kind in (CONCURRENCY, OFFLINE) and lost is None and not state.interrupted
            and loadgen.get("min_duration_met") is False and not record.errors
            and bool(record.requests_per_s))


def _emit(plan: SweepPlan, state: _State, target: EmitTarget, say: Say) -> int:
    """The accuracy run, then each layout and its checks (EXIT_FAILED when one fails)."""
    output = state.launch(plan.output_dir / "accuracy", "accuracy",
                          ["--scenario", "Offline", "--mode", "accuracy", "--no-report"],
                          lambda: say("accuracy: every sample once (Offline), scored with ROUGE "
                                      "for the result layouts"))
    lost = state.guard.lost(output.results, output.exit_status, "accuracy")
    if lost is not None:
        raise RunStopped(lost, "accuracy")
    accuracy = (output.results or {}).get("accuracy")
    if accuracy is None:
        say(f"the accuracy run scored nothing (exit {output.exit_status}; see "
            f"{plan.output_dir / 'accuracy' / 'run.log'})")
    state.update(accuracy=None if accuracy is None else SweepAccuracy(
        "accuracy", accuracy["passed"], accuracy["gen_num"],
        *(accuracy[key] for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"))))
    points, emitted = state.sweep.points, {}
    if EMIT_V61 in plan.emit:
        if accuracy is None:
            emitted[EMIT_V61] = {"passed": False, "reason": "no accuracy was scored"}
        else:
            say(f"laying out {V61_FOLDER}/" + (" and running MLCommons' checker"
                                               if target.checker else ""))
            emitted[EMIT_V61] = write_v61(target, plan.output_dir, points, accuracy,
                                          output.wall_s)
    if EMIT_V1 in plan.emit:
        say(f"laying out {V1_FOLDER}/")
        emitted[EMIT_V1] = write_v1(target, plan.output_dir, points, plan.dataset_samples,
                                    accuracy, output.wall_s)
    state.update(emit=emitted)
    _write(plan, state)
    for name, report in emitted.items():
        for line in report.get("extra_checks", {}).get("findings", []):
            say(f"{name}: {line}")
    return EXIT_OK if all(r["passed"] for r in emitted.values()) else EXIT_FAILED


def _rate(point: Point, state: _State) -> float | None:
    """The point's rate: a rate point's own, a Server point's from the curve (None: no point
    kept the official Server limits), else the predicted upper bound its size is set from."""
    if point.kind == RATE:
        return point.value
    if point.kind == SERVER:
        limits = OFFICIAL_LATENCY_LIMITS[Scenario.SERVER]
        measured = [LoadPoint(p.requests_per_s, p.ttft_ms["p99"], p.tpot_ms["p99"])
                    for p in state.sweep.points if not p.failed and p.requests_per_s]
        edge = predicted_server_rate(measured, limits.ttft_ms, limits.tpot_ms)
        return None if edge is None else round_rate(edge * SERVER_POINT_SHARE)
    return predicted_rate(point, state.offline_qps, state.latency_below)


def _skipped(point: Point, sweep: SweepResult) -> SweepPoint:
    limits = OFFICIAL_LATENCY_LIMITS[Scenario.SERVER]
    return SweepPoint(point.name, point.kind, failed=True,
                      reason=f"not run: no point of the {len(sweep.points)} measured kept TTFT "
                             f"p99 <= {limits.ttft_ms:g} ms and TPOT p99 <= "
                             f"{limits.tpot_ms:g} ms, so the curve predicts no Server rate")


def _pilots(plan: SweepPlan, state: _State, say: Say) -> bool:
    """The Offline pilot, everything in flight (the most the deployment serves: it bounds every
    point, the Offline point's own rate included), and the concurrency-1 pilot (the lowest
    latency): the points' sizes come from them. False: they measured nothing."""
    levels = _levels(plan)
    pilots = [("pilot-offline", [], min(plan.dataset_samples, max(64, 2 * max(levels,
                                                                              default=0))))]
    if levels:  # the concurrency points' sizes start from the latency of one in flight
        pilots.append(("pilot-c0001", ["--max-concurrency", "1"], PILOT_LATENCY_QUERIES))
    for name, extra, queries in pilots:
        args = ["--scenario", "Offline", "--duration", "0.1", "--min-query-count",
                str(queries), "--no-report", "--no-equal-issue", *extra]
        output = state.launch(plan.output_dir / name, name, args, lambda: say(
            f"{name}: a short run ({queries} queries) to size the points"))
        results = output.results or {}
        client = results.get("client") or {}
        pilot = Pilot(name, name, output.exit_status, client.get("requests_per_second"),
                      (client.get("e2e_ms") or {}).get("mean"))
        state.update(pilots=(*state.sweep.pilots, pilot))
        _write(plan, state)
        lost = state.guard.lost(output.results, output.exit_status, name)
        if lost is not None:
            raise RunStopped(lost, name)
        if not client.get("requests_per_second") or client.get("errors"):
            if not state.interrupted:
                say(f"{name} measured nothing usable; see {plan.output_dir / name / 'run.log'}")
            return False
        if name == "pilot-offline":
            state.offline_qps = client["requests_per_second"]
        else:
            state.latency_below = (1, client["e2e_ms"]["mean"] / 1000)
    return True


def _levels(plan: SweepPlan) -> list[int]:
    return [point.concurrency for point in plan.points if point.kind == CONCURRENCY]


def _point_record(plan: SweepPlan, point: Point, output: RunOutput, rate: float, passes: int,
                  queries: int, duration_s: float) -> SweepPoint:
    found = regions(max(_levels(plan), default=0))
    record = SweepPoint(point.name, point.kind, concurrency=point.concurrency,
                        target_qps=rate if point.kind in (RATE, SERVER) else None,
                        region=_region(point, found), dir=point.name,
                        exit_status=output.exit_status, wall_s=output.wall_s,
                        planned=Planned(passes, queries, duration_s))
    results = output.results
    requests_path = plan.output_dir / point.name / "requests.jsonl"
    if results is None or not requests_path.exists():
        return replace(record, failed=True,
                       reason=f"the run wrote no results (exit {output.exit_status}; see "
                              f"{point.name}/run.log)")
    records = read_requests(requests_path)
    figures = point_figures(records, plan.limits.ttft_ms, plan.limits.tpot_ms)
    write_point_files(plan.output_dir / point.name, records,
                      cached_prompt_lengths(plan.output_dir / TOKEN_CACHE),
                      _load_pattern(point, rate), (int(min_duration_s(point.concurrency) * 1000),
                                                   int(duration_s * 1000)), queries, plan.endpoints,
                      bool(results.get("interrupted")))
    loadgen = results["loadgen"]
    notes = []
    if loadgen.get("min_duration_met") is False:
        notes.append(f"ran under its {duration_s:g} s: the size predicted was too small")
    if results.get("interrupted"):
        notes.append("interrupted")
    failed = failed_requests(results["client"], results["endpoints"])
    room = results["client"].get("headroom") or {}
    if room.get("bottleneck"):  # the point's latencies are partly the client's
        notes.append(room["verdict"])
    return replace(record, **figures, loadgen_result=loadgen["result"], failed_requests=failed,
                   client_bottleneck=bool(room.get("bottleneck")),
                   mean_latency_s=(results["client"]["e2e_ms"]["mean"] or 0) / 1000 or None,
                   failed=bool(figures["errors"]) or loadgen["result"] != "VALID",
                   notes=tuple(([failed] if failed else []) + notes))


def _region(point: Point, found: Regions | None) -> str | None:
    """Its Endpoints region: Offline, or by concurrency (none for a rate)."""
    if point.kind == OFFLINE:
        return "offline"
    if point.kind in (RATE, SERVER):
        return None
    if found is not None:
        return found.of(point.concurrency)
    return "ultra_low" if point.concurrency <= ULTRA_LOW_MAX else None


def _load_pattern(point: Point, rate: float) -> dict:
    """The point's load as Endpoints' config names it."""
    if point.kind == CONCURRENCY:
        return {"type": "concurrency", "target_concurrency": point.concurrency}
    if point.kind in (RATE, SERVER):
        return {"type": "poisson", "target_qps": rate,
                "use_legacy_loadgen_qps_metrics": True}
    return {"type": "max_throughput"}


def _with_front(sweep: SweepResult) -> SweepResult:
    points = [CurvePoint(p.name, p.system_tokens_per_s, p.tokens_per_s_per_user)
              for p in sweep.points if p.measured
              and p.kind != SERVER  # the curve's points: not the Server point it predicts
              and not p.aborted]  # nor a point whose server was lost
    front = pareto_front(points)
    by_name = {p.name: p for p in points}
    return replace(sweep, points=tuple(replace(p, on_front=p.name in front) for p in sweep.points),
                   front=tuple(front), step_function=tuple(
                       tuple(corner) for corner in step_function([by_name[n] for n in front])))


def _describe(point: Point, rate: float) -> str:
    if point.kind == CONCURRENCY:
        return f"concurrency {point.concurrency} (Offline issue)"
    if point.kind == RATE:
        return f"Server at {point.value:g} QPS"
    if point.kind == SERVER:
        return (f"Server at {rate:g} QPS ({SERVER_POINT_SHARE:.0%} of the rate the curve "
                f"predicts for the official limits)")
    return "Offline, everything in flight"


def _summary(record: SweepPoint) -> str:
    if not record.measured:
        return record.reason or "measured nothing"
    per_user = record.tokens_per_s_per_user
    return ((f"FAILED: {record.failed_requests}; " if record.failed_requests else "")
            + f"{record.system_tokens_per_s:,.1f} tokens/s, "
            f"{'-' if per_user is None else f'{per_user:,.1f}'} tokens/s per user "
            f"(1000/TPOT p90), TTFT p90 {record.ttft_ms['p90']} ms, "
            f"{record.requests} requests, {record.errors} errors, LoadGen "
            f"{record.loadgen_result}")


def _verdict(sweep: SweepResult) -> str:
    if sweep.aborted:
        return "server_lost"
    if sweep.interrupted:
        return "interrupted"
    if len(sweep.points) < len(sweep.plan.points):
        return "incomplete"
    return "failed_points" if any(p.failed for p in sweep.points) else "complete"


def _skeleton(plan: SweepPlan) -> SweepResult:
    notes = compliance_notes(plan)
    levels = _levels(plan)
    found = regions(max(levels)) if levels else None
    return SweepResult(
        limits=SweepLimits(plan.limits.ttft_ms, plan.limits.tpot_ms),
        definitions=DEFINITIONS,
        plan=PlanSummary(tuple(p.name for p in plan.points), plan.point_duration_s,
                         plan.dataset_samples, None if found is None else {
                             "ultra_low": [1, 32], "low_end": found.low_end,
                             "medium_end": found.medium_end, "c_max": found.c_max}),
        compliant=not notes,
        compliance_notes=tuple(notes))


def _write(plan: SweepPlan, state: _State) -> None:
    state.sweep.write(plan.output_dir)


def front_lines(sweep: SweepResult) -> list[str]:
    """The table printed at the end: every point, the front marked."""
    lines = [f"{'point':<10} {'tokens/s':>10} {'tok/s/user':>10} {'TTFT p90':>9} "
             f"{'TPOT p90':>9} {'requests':>8} {'errors':>6}  front"]
    for p in sweep.points:
        if not p.measured:
            lines.append(f"{p.name:<10} {p.reason or 'no figures'}")
            continue
        per_user = p.tokens_per_s_per_user
        lines.append(f"{p.name:<10} {p.system_tokens_per_s:>10,.1f} "
                     f"{'-' if per_user is None else f'{per_user:,.1f}':>10} "
                     f"{p.ttft_ms['p90'] or 0:>9,.1f} {p.tpot_ms['p90'] or 0:>9,.2f} "
                     f"{p.requests:>8} {p.errors:>6}  {'*' if p.on_front else ''}")
    return lines
