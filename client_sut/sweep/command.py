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

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass

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
from client_sut.runs.child import RunOutput, Series
from client_sut.requests_file import read_requests
from client_sut.runs.runner import prepare_output_dir
from client_sut.runs.server_guard import ServerGuard
from client_sut.sla.search import round_rate
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

Say = Callable[[str], None]
SWEEP_VERSION = 1
TOKEN_CACHE = "tokens.msgpack"
SHORT_RUN_SUFFIX = "-too-short"  # a point's first run, when it ended before its duration
# A Server point runs this share of the rate the curve predicts: a closed loop meets no Poisson
# bursts, so a Server run's edge lies at or below the prediction.
SERVER_POINT_SHARE = 0.9
# A Server point the v6.1 layout may hold certifies its p99s by early stopping: 662 queries.
ES_P99_QUERIES = min_passing(1, 0.99) + 1


@dataclass
class _State(Series):
    offline_qps: float | None = None  # the Offline pilot's samples/s
    latency_below: tuple[int, float] | None = None  # (concurrency, mean latency s) measured


def run_sweep(plan: SweepPlan, say: Say) -> tuple[dict, int]:
    """sweep.json's content and the exit status; sweep.json is rewritten after every run."""
    prepare_output_dir(plan.output_dir)
    target = prepare_emit(plan.system_file, plan.checker, plan.division, plan.endpoints,
                          plan.output_dir) if plan.emit else None
    state = _State(plan.run_args, plan.output_dir / TOKEN_CACHE)
    state.guard = ServerGuard(plan.endpoints, plan.credentials, None, say,
                              lambda: state.interrupted)
    sweep = _skeleton(plan)
    with state.signals_forwarded():
        try:
            status = _sweep(plan, sweep, state, say)
            if target is not None and sweep["points"] and not state.interrupted:
                status = max(status, _emit(plan, sweep, state, target, say))
        except RunStopped as stop:  # a server gone: the points measured stand, no more are run
            sweep["aborted"] = {"during": stop.during, "reason": stop.reason}
            say(f"the sweep stops (exit {stop.exit_status}): {stop.reason}")
            status = stop.exit_status
    sweep["interrupted"] = state.interrupted
    sweep["elapsed_s"] = state.elapsed_s
    failed = [f"{p['name']}: {p['failed_requests']}" for p in sweep["points"]
              if p.get("failed_requests")]
    if failed:  # said first: those points did not measure the deployment
        sweep["compliance_notes"][:0] = failed
        sweep["compliant"] = False
    sweep["verdict"] = _verdict(sweep)
    _write(plan, sweep)
    return sweep, EXIT_INTERRUPTED if state.interrupted else status


def _sweep(plan: SweepPlan, sweep: dict, state: _State, say: Say) -> int:
    if any(point.kind != RATE for point in plan.points) and not _pilots(plan, sweep, state, say):
        return EXIT_INTERRUPTED if state.interrupted else EXIT_FAILED
    status = EXIT_OK
    for point in plan.points:
        if state.interrupted:
            break
        duration = plan.duration_s(point)
        rate = _rate(point, sweep, state)
        if rate is None:
            sweep["points"].append(_skipped(point, sweep))
            _write(plan, sweep)
            say(f"{point.name}: {sweep['points'][-1]['reason']}")
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
            served = record["requests_per_s"]
            say(f"{point.name}: served {served:g} queries/s and ended under its {duration:g} s: "
                f"sized again from that rate (the short run is kept in {short})")
            record, output, lost = _run_point(plan, point, served * RATE_MARGIN, duration,
                                              state, say)
            record["resized_after"] = {"dir": short, "requests_per_s": served}
        if lost is not None:  # it measured no deployment: kept, but off the curve
            record.update(aborted=True, reason=lost)
        sweep["points"].append(record)
        _update_front(sweep)
        _write(plan, sweep)
        if lost is not None:
            raise RunStopped(lost, point.name)
        say(f"{point.name}: {_summary(record)}")
        if record["failed"]:
            status = EXIT_FAILED
        if point.kind == CONCURRENCY and record.get("mean_latency_s"):
            state.latency_below = (point.concurrency, record["mean_latency_s"])
    return status


def _run_point(plan: SweepPlan, point: Point, rate: float, duration: float, state: _State,
               say: Say) -> tuple[dict, RunOutput, str | None]:
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


def _ran_short(point: Point, output: RunOutput, record: dict, lost: str | None,
               state: _State) -> bool:
    """An Offline-issue point that ended before its duration with nothing else wrong."""
    loadgen = (output.results or {}).get("loadgen") or {}
    return (point.kind in (CONCURRENCY, OFFLINE) and lost is None and not state.interrupted
            and loadgen.get("min_duration_met") is False and not record.get("errors")
            and bool(record.get("requests_per_s")))


def _emit(plan: SweepPlan, sweep: dict, state: _State, target: EmitTarget, say: Say) -> int:
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
    sweep["accuracy"] = None if accuracy is None else {
        "dir": "accuracy", "passed": accuracy["passed"], "gen_num": accuracy["gen_num"],
        **{key: accuracy[key] for key in ("rouge1", "rouge2", "rougeL", "rougeLsum")}}
    if EMIT_V61 in plan.emit:
        if accuracy is None:
            sweep["emit"][EMIT_V61] = {"passed": False, "reason": "no accuracy was scored"}
        else:
            say(f"laying out {V61_FOLDER}/" + (" and running MLCommons' checker"
                                               if target.checker else ""))
            sweep["emit"][EMIT_V61] = write_v61(target, plan.output_dir, sweep["points"],
                                                accuracy, output.wall_s)
    if EMIT_V1 in plan.emit:
        say(f"laying out {V1_FOLDER}/")
        sweep["emit"][EMIT_V1] = write_v1(target, plan.output_dir, sweep["points"],
                                          plan.dataset_samples, accuracy, output.wall_s)
    _write(plan, sweep)
    for name, report in sweep["emit"].items():
        for line in report.get("extra_checks", {}).get("findings", []):
            say(f"{name}: {line}")
    return EXIT_OK if all(r["passed"] for r in sweep["emit"].values()) else EXIT_FAILED


def _rate(point: Point, sweep: dict, state: _State) -> float | None:
    """The point's rate: a rate point's own, a Server point's from the curve (None: no point
    kept the official Server limits), else the predicted upper bound its size is set from."""
    if point.kind == RATE:
        return point.value
    if point.kind == SERVER:
        limits = OFFICIAL_LATENCY_LIMITS[Scenario.SERVER]
        measured = [LoadPoint(p["requests_per_s"], p["ttft_ms"]["p99"], p["tpot_ms"]["p99"])
                    for p in sweep["points"] if not p["failed"] and p.get("requests_per_s")]
        edge = predicted_server_rate(measured, limits.ttft_ms, limits.tpot_ms)
        return None if edge is None else round_rate(edge * SERVER_POINT_SHARE)
    return predicted_rate(point, state.offline_qps, state.latency_below)


def _skipped(point: Point, sweep: dict) -> dict:
    limits = OFFICIAL_LATENCY_LIMITS[Scenario.SERVER]
    return {"name": point.name, "kind": point.kind, "concurrency": None, "target_qps": None,
            "region": None, "dir": None, "failed": True, "aborted": False, "on_front": False,
            "reason": f"not run: no point of the {len(sweep['points'])} measured kept TTFT p99 "
                      f"<= {limits.ttft_ms:g} ms and TPOT p99 <= {limits.tpot_ms:g} ms, so the "
                      f"curve predicts no Server rate"}


def _pilots(plan: SweepPlan, sweep: dict, state: _State, say: Say) -> bool:
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
        sweep["pilots"].append({"name": name, "dir": name, "exit_status": output.exit_status,
                                "requests_per_second": client.get("requests_per_second"),
                                "mean_latency_ms": (client.get("e2e_ms") or {}).get("mean")})
        _write(plan, sweep)
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
                  queries: int, duration_s: float) -> dict:
    found = regions(max(_levels(plan), default=0))
    record = {"name": point.name, "kind": point.kind, "concurrency": point.concurrency,
              "target_qps": rate if point.kind in (RATE, SERVER) else None,
              "region": _region(point, found),
              "dir": point.name, "exit_status": output.exit_status, "wall_s": output.wall_s,
              "planned": {"passes": passes, "queries": queries, "duration_s": duration_s},
              "aborted": False, "on_front": False}
    results = output.results
    requests_path = plan.output_dir / point.name / "requests.jsonl"
    if results is None or not requests_path.exists():
        return {**record, "failed": True, "loadgen_result": None,
                "reason": f"the run wrote no results (exit {output.exit_status}; see "
                          f"{point.name}/run.log)"}
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
    return {**record, **figures, "loadgen_result": loadgen["result"], "failed_requests": failed,
            "client_bottleneck": bool(room.get("bottleneck")),
            "mean_latency_s": (results["client"]["e2e_ms"]["mean"] or 0) / 1000 or None,
            "failed": bool(figures["errors"]) or loadgen["result"] != "VALID",
            "notes": ([failed] if failed else []) + notes}


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


def _update_front(sweep: dict) -> None:
    points = [CurvePoint(p["name"], p["system_tokens_per_s"], p["tokens_per_s_per_user"])
              for p in sweep["points"] if p.get("system_tokens_per_s") is not None
              and p["kind"] != SERVER  # the curve's points: not the Server point it predicts
              and not p["aborted"]]  # nor a point whose server was lost
    front = pareto_front(points)
    for point in sweep["points"]:
        point["on_front"] = point["name"] in front
    by_name = {p.name: p for p in points}
    sweep["front"] = front
    sweep["step_function"] = [list(corner) for corner in
                              step_function([by_name[name] for name in front])]


def _describe(point: Point, rate: float) -> str:
    if point.kind == CONCURRENCY:
        return f"concurrency {point.concurrency} (Offline issue)"
    if point.kind == RATE:
        return f"Server at {point.value:g} QPS"
    if point.kind == SERVER:
        return (f"Server at {rate:g} QPS ({SERVER_POINT_SHARE:.0%} of the rate the curve "
                f"predicts for the official limits)")
    return "Offline, everything in flight"


def _summary(record: dict) -> str:
    if record.get("system_tokens_per_s") is None:
        return record.get("reason", "measured nothing")
    per_user = record["tokens_per_s_per_user"]
    return ((f"FAILED: {record['failed_requests']}; " if record.get("failed_requests") else "")
            + f"{record['system_tokens_per_s']:,.1f} tokens/s, "
            f"{'-' if per_user is None else f'{per_user:,.1f}'} tokens/s per user "
            f"(1000/TPOT p90), TTFT p90 {record['ttft_ms']['p90']} ms, "
            f"{record['requests']} requests, {record['errors']} errors, LoadGen "
            f"{record['loadgen_result']}")


def _verdict(sweep: dict) -> str:
    if sweep["aborted"]:
        return "server_lost"
    if sweep["interrupted"]:
        return "interrupted"
    if len(sweep["points"]) < len(sweep["plan"]["points"]):
        return "incomplete"
    return "failed_points" if any(p["failed"] for p in sweep["points"]) else "complete"


def _skeleton(plan: SweepPlan) -> dict:
    notes = compliance_notes(plan)
    levels = _levels(plan)
    found = regions(max(levels)) if levels else None
    return {
        "version": SWEEP_VERSION,
        "definitions": DEFINITIONS,
        "limits": {"ttft_ms": plan.limits.ttft_ms, "tpot_ms": plan.limits.tpot_ms,
                   "for": "goodput"},
        "plan": {"points": [p.name for p in plan.points],
                 "point_duration_s": plan.point_duration_s,
                 "dataset_samples": plan.dataset_samples,
                 "regions": None if found is None else {
                     "ultra_low": [1, 32], "low_end": found.low_end,
                     "medium_end": found.medium_end, "c_max": found.c_max}},
        "compliant": not notes,
        "compliance_notes": notes,
        "pilots": [],
        "points": [],
        "front": [],
        "step_function": [],
        "verdict": None,
        "interrupted": False,
        "aborted": None,
        "accuracy": None,
        "emit": {},
    }


def _write(plan: SweepPlan, sweep: dict) -> None:
    path = plan.output_dir / "sweep.json"
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(sweep, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def front_lines(sweep: dict) -> list[str]:
    """The table printed at the end: every point, the front marked."""
    lines = [f"{'point':<10} {'tokens/s':>10} {'tok/s/user':>10} {'TTFT p90':>9} "
             f"{'TPOT p90':>9} {'requests':>8} {'errors':>6}  front"]
    for p in sweep["points"]:
        if p.get("system_tokens_per_s") is None:
            lines.append(f"{p['name']:<10} {p.get('reason', 'no figures')}")
            continue
        per_user = p["tokens_per_s_per_user"]
        lines.append(f"{p['name']:<10} {p['system_tokens_per_s']:>10,.1f} "
                     f"{'-' if per_user is None else f'{per_user:,.1f}':>10} "
                     f"{p['ttft_ms']['p90'] or 0:>9,.1f} {p['tpot_ms']['p90'] or 0:>9,.2f} "
                     f"{p['requests']:>8} {p['errors']:>6}  {'*' if p['on_front'] else ''}")
    return lines
