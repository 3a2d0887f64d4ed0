"""`client-sut sla`: search the highest target QPS whose Server (or Interactive) run is VALID,
then confirm it with a run of the official duration. I/O and orchestration; the decisions are
made by `verdict` and `search`.

Every probe is a real LoadGen Server run through the same client as `run`, with LoadGen's fixed
seeds, so each sees the same arrival pattern scaled to its rate. A probe that cannot be decided
(too few queries for LoadGen's early stopping, or a p99 too close to its limit) is repeated with
twice the queries; one whose limits are proven lost mid-run stops there.

A probe during which a server stopped answering (its port refused connections, its health path
went silent, its streams all broke at once) measured no deployment: it is kept as `aborted`, with
the reason, and is neither a pass nor a fail. The search then stops, or with --wait-for-server
waits for every server to answer again and repeats the probe (its run warms the server up
again first). No run starts against a server that does not answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from client_sut.analysis.curve import (
    LoadPoint,
    point_figures,
    predicted_server_rate,
    round_rate,
)
from client_sut.analysis.early_stopping import MIN_QUERIES_TO_PASS
from client_sut.analysis.failures import failed_requests
from client_sut.config import OFFICIAL_MIN_DURATION_S, LatencyLimits, Scenario
from client_sut.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    RunStopped,
    UsageError,
)
from client_sut.requests_file import read_requests
from client_sut.result_files.sla import (
    FILE_NAME,
    Probe,
    SearchSettings,
    SelfCheck,
    SlaLimits,
    SlaResult,
    Start,
    StartPoint,
    Stopped,
)
from client_sut.result_files.sweep import FILE_NAME as SWEEP_FILE
from client_sut.result_files.sweep import SweepResult
from client_sut.runs.child import RunOutput, Series
from client_sut.runs.runner import prepare_output_dir
from client_sut.runs.series import Say
from client_sut.runs.server_guard import ServerGuard
from client_sut.security import Credentials
from client_sut.sla.search import (
    PREDICTED_STEP,
    NextProbe,
    Probed,
    bracket,
    next_probe,
)
from client_sut.sla.verdict import ABORTED, PASS, UNDECIDED, ProbeFigures, judge

# A little over the 459 queries LoadGen's early stopping needs with none over the limits.
PROBE_QUERIES = round(MIN_QUERIES_TO_PASS * 1.1)
ATTEMPTS_PER_RATE = 3  # an undecided probe is repeated with twice the queries, this many times
START_RUN_QUERIES = 256  # the start curve's Offline run
START_ONE_QUERIES = 8  # its run at concurrency 1: the latency no load can beat
START_MIDDLE_QUERIES = 64  # its third point (at least 4 requests per slot)
START_SHARE_OF_OFFLINE = 0.75  # a Server SLA is usually met at 60-95% of Offline throughput
TOKEN_CACHE = "tokens.msgpack"
_Run = TypeVar("_Run", Probe, StartPoint)


@dataclass(frozen=True, slots=True)
class SlaPlan:
    scenario: Scenario
    limits: LatencyLimits  # the limits the search holds every run to
    official_limits: bool
    output_dir: Path
    run_args: tuple[str, ...]  # the deployment flags, passed to every run
    probe_duration_s: float = 30.0
    confirm_duration_s: float = float(OFFICIAL_MIN_DURATION_S)
    tolerance: float = 0.03
    max_probes: int = 12
    start_qps: float | None = None
    start_rule: str = "--start-qps"  # where start_qps came from
    start_predicted: bool = False  # start_qps is a measured curve's edge (--from-sweep)
    endpoints: tuple[str, ...] = ()  # the servers every run is made against, to check between
    credentials: Credentials = Credentials()
    wait_for_server_s: float | None = None  # wait this long for a server to come back


def start_from_sweep(sweep_dir: Path, limits: LatencyLimits) -> tuple[float, str]:
    """The start rate a sweep's curve predicts for these limits, and how it was found."""
    path = sweep_dir / SWEEP_FILE
    try:
        sweep = SweepResult.read(sweep_dir)
    except UsageError as exc:
        raise UsageError(f"--from-sweep: {exc}") from None
    points = [LoadPoint(p.requests_per_s, p.ttft_ms["p99"], p.tpot_ms["p99"])
              for p in sweep.points if not p.failed and not p.aborted and p.requests_per_s
              and p.ttft_ms and p.ttft_ms.get("p99") is not None]
    rate = predicted_server_rate(points, limits.ttft_ms, limits.tpot_ms)
    if rate is None:
        raise UsageError(f"--from-sweep: no point of {path} ({len(points)} measured) keeps TTFT "
                         f"p99 <= {limits.ttft_ms:g} ms and TPOT p99 <= {limits.tpot_ms:g} ms; "
                         f"sweep lower concurrencies, or give --start-qps")
    rate = round_rate(rate)
    return rate, (f"predicted from the sweep in {sweep_dir} ({len(points)} points): where its "
                  f"p99s reach the limits")


def check_plan(plan: SlaPlan) -> None:
    if plan.scenario not in (Scenario.SERVER, Scenario.INTERACTIVE):
        raise UsageError(f"--scenario {plan.scenario.value}: an SLA search needs latency "
                         f"limits: use Server or Interactive")
    for value, flag in ((plan.probe_duration_s, "--probe-duration"),
                        (plan.confirm_duration_s, "--confirm-duration"),
                        (plan.start_qps, "--start-qps")):
        if value is not None and not value > 0:
            raise UsageError(f"{flag} must be greater than 0, got {value}")
    if not 0.001 <= plan.tolerance < 1:
        raise UsageError(f"--tolerance is relative: give a number from 0.001 to 0.99, got "
                         f"{plan.tolerance}")
    if plan.max_probes < 2:
        raise UsageError(f"--max-probes must be at least 2 (a bracket needs a pass and a fail), "
                         f"got {plan.max_probes}")
    if plan.wait_for_server_s is not None and not plan.wait_for_server_s > 0:
        raise UsageError(f"--wait-for-server must be greater than 0 seconds, got "
                         f"{plan.wait_for_server_s}")


@dataclass
class _State(Series):
    sla: SlaResult | None = None  # what sla.json says so far
    history: list[Probed] = field(default_factory=list)  # what measured the deployment
    start_predicted: bool = False  # the start is the measured curve's edge

    def update(self, **changes) -> None:
        self.sla = replace(self.sla, **changes)

    def update_start(self, **changes) -> None:
        self.update(start=replace(self.sla.start, **changes))


def run_search(plan: SlaPlan, say: Say) -> tuple[SlaResult, int]:
    """Returns sla.json's content and the exit status; sla.json is rewritten after every run.
    Bad input raises UsageError before any run."""
    check_plan(plan)
    prepare_output_dir(plan.output_dir)
    state = _State(plan.run_args, plan.output_dir / TOKEN_CACHE, sla=_skeleton(plan))
    state.guard = ServerGuard(plan.endpoints, plan.credentials, plan.wait_for_server_s, say,
                              lambda: state.interrupted)
    with state.signals_forwarded():
        try:
            status = _search(plan, state, say)
        except RunStopped as stop:  # a server gone: what was measured stands, no more is tried
            state.update(aborted=Stopped(stop.during, stop.reason))
            _conclude(state)
            say(f"the search stops (exit {stop.exit_status}); what it measured is in "
                f"{plan.output_dir / FILE_NAME}")
            status = stop.exit_status
    state.update(interrupted=state.interrupted, elapsed_s=state.elapsed_s)
    state.sla.write(plan.output_dir)
    return state.sla, EXIT_INTERRUPTED if state.interrupted else status


def _search(plan: SlaPlan, state: _State, say: Say) -> int:
    start = plan.start_qps or _start_rate(plan, state, say)
    step = PREDICTED_STEP if plan.start_predicted or state.start_predicted else 2.0
    if start is None:
        return EXIT_INTERRUPTED if state.interrupted else EXIT_FAILED
    state.update_start(qps=start)
    history = state.history
    confirmed_by_probe: dict[float, Probe] = {}  # full-size passes: each a confirmation itself
    upcoming, attempt = NextProbe(start, False), 0
    while (upcoming is not None and _measured(state.sla.probes) < plan.max_probes
           and not state.interrupted):
        rate, full = round_rate(upcoming.qps), upcoming.full_size
        duration, queries = (_confirmation_size(plan) if full else
                             (plan.probe_duration_s * 2 ** attempt, PROBE_QUERIES * 2 ** attempt))
        probe = _probe(plan, state, say, f"probe-{_measured(state.sla.probes) + 1:02d}", rate,
                       duration, queries, kept_in="probes")
        probe = replace(probe, size="confirmation" if full else "short")
        again = (not state.interrupted and probe.verdict == UNDECIDED and not full
                 and attempt + 1 < ATTEMPTS_PER_RATE)  # the same rate, with twice the queries
        if probe.verdict == UNDECIDED and not state.interrupted and not again:
            probe = replace(probe, reason=probe.reason + (
                "; at the confirmation's size that is no pass" if full else
                f"; treated as a fail after {ATTEMPTS_PER_RATE} attempts"))
        state.update(probes=(*state.sla.probes, probe))
        _write(plan, state)
        if state.interrupted:
            break
        if again:
            attempt += 1
            continue
        if full and probe.verdict == PASS:
            confirmed_by_probe[rate] = probe
        history.append(Probed(rate, probe.verdict == PASS, full))
        upcoming, attempt = next_probe(history, start, plan.tolerance, step), 0
    found = bracket(history)
    proven = bracket(history, full_size_only=True).highest_pass
    _conclude(state)
    if state.interrupted:
        return EXIT_INTERRUPTED
    if found.highest_pass is None:
        say("no probed rate passed: not even the lowest rate serves within the SLA")
        return EXIT_FAILED
    if proven is not None:
        probe = confirmed_by_probe[proven]
        say(f"{probe.dir} ran at the confirmation's size and passed: it is the confirmation")
        state.sla, status = confirmed(state.sla, probe)
        return status
    return _confirm(plan, state, say, found.highest_pass)


def _measured(probes: tuple[Probe, ...]) -> int:
    return sum(1 for probe in probes if probe.verdict != ABORTED)


def _conclude(state: _State) -> None:
    """The lowest failing rate and what failed it, from the probes that measured the deployment
    (a probe aborted by a server gone measured nothing, and names no rate)."""
    lowest_fail = bracket(state.history).lowest_fail
    runs = state.sla.probes + state.sla.confirmation_attempts
    state.update(lowest_failing_qps=lowest_fail, binding_constraint=None if lowest_fail is None
                 else next((p.constraint for p in reversed(runs) if p.target_qps == lowest_fail
                            and p.verdict not in (PASS, ABORTED)), None))


def _confirmation_size(plan: SlaPlan) -> tuple[float, int | None]:
    """The official duration and query count, or the shorter --confirm-duration with enough
    queries for early stopping to pass."""
    official = plan.confirm_duration_s >= OFFICIAL_MIN_DURATION_S
    return plan.confirm_duration_s, None if official else PROBE_QUERIES


def confirmed(sla: SlaResult, run: Probe) -> tuple[SlaResult, int]:
    """The search's answer is RUN's rate: sla.json as it then reads, and the exit status."""
    sla = replace(sla, answer_qps=run.target_qps, confirmed=True, confirmation=run,
                  goodput=run.goodput, self_check=run.self_check)
    if run.failed_requests:  # within the p99s, yet not a deployment that served them all
        return replace(sla, compliant=False, compliance_notes=(
            f"the confirmation at {run.target_qps:g} QPS: {run.failed_requests}",
            *sla.compliance_notes)), EXIT_FAILED
    return sla, EXIT_OK


def _confirm(plan: SlaPlan, state: _State, say: Say, highest_pass: float) -> int:
    """The answer is the highest rate a confirmation run calls VALID: the best probe's rate, or
    one step lower when that fails."""
    for number, rate in enumerate((highest_pass, round_rate(highest_pass / (1 + plan.tolerance))),
                                  start=1):
        confirmation = _probe(plan, state, say, f"confirm-{number}", rate,
                              *_confirmation_size(plan), kept_in="confirmation_attempts")
        state.update(confirmation_attempts=(*state.sla.confirmation_attempts, confirmation),
                     confirmation=confirmation)
        if not confirmation.interrupted:  # a confirmation is a full-size probe
            state.history.append(Probed(rate, confirmation.verdict == PASS, True))
        _conclude(state)
        _write(plan, state)
        if state.interrupted:
            return EXIT_INTERRUPTED
        if confirmation.verdict == PASS:
            state.sla, status = confirmed(state.sla, confirmation)
            return status
    say("no confirmation run was VALID: no confirmed answer")
    return EXIT_FAILED


def _start_rate(plan: SlaPlan, state: _State, say: Say) -> float | None:
    """Where the search starts: the Server rate a short three-point curve puts at the limits.
    Offline (everything in flight) gives the most the deployment serves, one request in flight
    the latency no load can beat; the third point holds the concurrency that at that latency
    would serve START_SHARE_OF_OFFLINE of Offline's rate. The curve's edge (Little's law on its
    points, analysis/curve.py) is the start; with no point within the limits, a share of
    Offline's rate is, and the search steps down from it."""
    state.update(start=Start())
    offline = _start_point(plan, state, say, "start-offline", [], START_RUN_QUERIES)
    samples_per_second = offline.offline_samples_per_second
    state.update_start(dir=offline.dir, offline_samples_per_second=samples_per_second)
    if not samples_per_second:
        if not state.interrupted:
            say(f"the Offline start run measured nothing; see "
                f"{plan.output_dir / offline.dir / 'run.log'}, or give --start-qps")
        return None
    one = _start_point(plan, state, say, "start-c0001", ["--max-concurrency", "1"],
                       START_ONE_QUERIES)
    points = [offline, one]
    if one.mean_latency_s:
        middle = max(2, round(START_SHARE_OF_OFFLINE * samples_per_second * one.mean_latency_s))
        points.append(_start_point(plan, state, say, f"start-c{middle:04d}",
                                   ["--max-concurrency", str(middle)],
                                   max(START_MIDDLE_QUERIES, 4 * middle)))
    if state.interrupted:
        return None
    measured = [LoadPoint(p.requests_per_s, p.ttft_p99_ms, p.tpot_p99_ms)
                for p in points if p.requests_per_s and p.ttft_p99_ms is not None]
    edge = predicted_server_rate(measured, plan.limits.ttft_ms, plan.limits.tpot_ms)
    if edge is None:
        start = round_rate(START_SHARE_OF_OFFLINE * samples_per_second)
        rule = (f"{START_SHARE_OF_OFFLINE:g} x the Offline run's samples/s: no start point kept "
                f"the limits")
    else:
        start = round_rate(edge)
        state.start_predicted = True
        rule = (f"predicted from {len(measured)} start points (Offline, concurrency 1 and "
                f"{points[-1].concurrency}): where their p99s reach the limits")
    state.update_start(rule=rule)
    say(f"start rate: {start:g} QPS ({rule}; Offline served {samples_per_second:,.2f} "
        f"samples/s)")
    return start


def _start_point(plan: SlaPlan, state: _State, say: Say, name: str,
                 concurrency: list[str], queries: int) -> StartPoint:
    """One short Offline-issue run of the start curve and its figures (TTFT from the send: a
    request waiting for a slot in the client is not yet at the server)."""
    def attempt(label: str) -> StartPoint:
        output = state.launch(
            plan.output_dir / label, label,
            ["--scenario", "Offline", "--duration", "1", "--no-report", "--no-equal-issue",
             "--min-query-count", str(queries), *concurrency],
            lambda: say(f"{label}: a short Offline run ({queries} queries"
                        f"{', at most ' + concurrency[1] + ' in flight' if concurrency else ''})"
                        f" for the start rate"))
        loadgen = (output.results or {}).get("loadgen") or {}
        run = StartPoint(label, int(concurrency[1]) if concurrency else None,
                         loadgen.get("samples_per_second"),
                         **_aborted_or_measured(state, output, label))
        requests = plan.output_dir / label / "requests.jsonl"
        if run.verdict == ABORTED:
            say(f"{label}: ABORTED in {output.wall_s:g} s: {run.reason}")
        elif requests.exists():
            figures = point_figures(read_requests(requests), plan.limits.ttft_ms,
                                    plan.limits.tpot_ms)
            mean_ms = ((output.results or {}).get("client", {}).get("e2e_ms") or {}).get("mean")
            run = replace(run, requests_per_s=figures["requests_per_s"],
                          ttft_p99_ms=figures["ttft_ms"]["p99"],
                          tpot_p99_ms=figures["tpot_ms"]["p99"],
                          mean_latency_s=mean_ms / 1000 if mean_ms else None)
        return run

    def keep_aborted(run: StartPoint) -> None:
        state.update_start(aborted=(*state.sla.start.aborted, run))

    run = _until_measured(plan, state, name, keep_aborted, attempt)
    state.update_start(points=(*state.sla.start.points, run))
    _write(plan, state)
    return run


def _probe(plan: SlaPlan, state: _State, say: Say, name: str, rate: float,
           duration_s: float, queries: int | None, kept_in: str) -> Probe:
    """One probe that measured the deployment (its repeats, when a server was lost, named
    NAME-repeatN; the aborted ones are kept in sla.json's list `kept_in`)."""
    # Each probe's figures are drawn in the search's own report.
    args = ["--scenario", plan.scenario.value, "--target-qps", f"{rate:g}",
            "--stop-when-sla-fails", "--no-report"]
    if queries is not None:  # a probe: exactly its queries, not a multiple of the sample count
        args += ["--no-equal-issue"]
    if duration_s < OFFICIAL_MIN_DURATION_S:
        args += ["--duration", f"{duration_s:g}"]
    if queries is not None:
        args += ["--min-query-count", str(queries)]
    if not plan.official_limits:
        args += ["--ttft-limit-ms", f"{plan.limits.ttft_ms:g}",
                 "--tpot-limit-ms", f"{plan.limits.tpot_ms:g}"]

    def attempt(label: str) -> Probe:
        folder = f"{label}-{rate:g}qps"
        output = state.launch(plan.output_dir / folder, label, args,
                              lambda: say(f"{label}: {rate:g} QPS for at least {duration_s:g} s"
                                          + (f" and {queries} queries" if queries else "")))
        probe = probe_record(output, rate, duration_s, folder)
        if state.interrupted:  # whatever the run wrote, the search stopped during it
            probe = replace(probe, interrupted=True, verdict=UNDECIDED, reason="interrupted")
        else:
            probe = replace(probe, **_aborted_or_measured(state, output, label))
        say(f"{label}: {probe.verdict.upper()} in {output.wall_s:g} s: {probe.reason}")
        return probe

    def keep_aborted(probe: Probe) -> None:
        state.update(**{kept_in: (*getattr(state.sla, kept_in), probe)})

    return _until_measured(plan, state, name, keep_aborted, attempt)


def _aborted_or_measured(state: _State, output: RunOutput, name: str) -> dict:
    """A run's verdict as far as the servers go: `aborted` with the reason when a server was
    lost during it or it wrote nothing; else nothing to change in what it measured."""
    lost = state.guard.lost(output.results, output.exit_status, name)
    if lost is not None:
        return {"verdict": ABORTED, "reason": lost, "server_lost": True, "constraint": None}
    if output.results is None and output.exit_status != EXIT_INTERRUPTED:
        return {"verdict": ABORTED, "server_lost": False, "constraint": None,
                "reason": f"{name} wrote no results (exit {output.exit_status}; see its "
                          f"run.log)"}
    return {"server_lost": False}


def _until_measured(plan: SlaPlan, state: _State, name: str,
                    keep_aborted: Callable[[_Run], None], attempt: Callable[[str], _Run]) -> _Run:
    """`attempt` until a run measures the deployment. An aborted one is kept (`keep_aborted`);
    then the search stops (RunStopped) or, with --wait-for-server, repeats it once the servers
    answer again."""
    label = name
    for repeat in itertools.count(1):
        run = attempt(label)
        if run.verdict != ABORTED or state.interrupted:
            return run
        keep_aborted(run)
        _write(plan, state)
        if not run.server_lost:
            raise RunStopped(f"{run.reason}: the search stops", label, EXIT_FAILED)
        state.guard.may_repeat(run.reason, label)
        label = f"{name}-repeat{repeat}"
    raise AssertionError("unreachable")


def probe_record(output: RunOutput, rate: float, duration_s: float, folder: str) -> Probe:
    """A probe as its run's results.json judges it."""
    results = output.results
    ran = {"target_qps": rate, "duration_s": duration_s, "dir": folder,
           "exit_status": output.exit_status, "wall_s": output.wall_s}
    if results is None:
        return Probe(**ran, verdict=UNDECIDED,
                     reason=f"the run wrote no results (exit {output.exit_status}; see "
                            f"{folder}/run.log)",
                     interrupted=output.exit_status == EXIT_INTERRUPTED)
    figures = ProbeFigures.from_results(results)
    verdict = judge(figures)
    failed = failed_requests(results["client"], results["endpoints"])
    check = results["self_check"]
    return Probe(
        **ran, requests=figures.queries, result=figures.result, failed_requests=failed,
        ttft_p99_ms=figures.ttft_p99_ms, tpot_p99_ms=figures.tpot_p99_ms, errors=figures.errors,
        over_ttft=figures.over_ttft, over_tpot=figures.over_tpot,
        early_stopping_met=figures.early_stopping_met,
        stopped_early=figures.stopped_early is not None, verdict=verdict.verdict,
        # Failed requests first, even where they were too few to lose the p99s.
        reason=f"{failed}; {verdict.reason}" if failed and verdict.constraint != "errors"
        else verdict.reason,
        constraint=verdict.constraint, interrupted=figures.interrupted,
        tokens_per_second=results["loadgen"]["tokens_per_second"]
        or results["client"]["output_tokens_per_second"],
        goodput=results["client"]["goodput"],
        self_check=SelfCheck(check["issue_lag_ms"], check["event_loop_lag_ms"],
                             tuple(check["warnings"])))


def _skeleton(plan: SlaPlan) -> SlaResult:
    notes = []
    if not plan.official_limits:
        notes.append(f"limits TTFT {plan.limits.ttft_ms:g} ms / TPOT {plan.limits.tpot_ms:g} ms "
                     f"are not the official ones for {plan.scenario.value} "
                     f"(--ttft-limit-ms/--tpot-limit-ms)")
    if plan.confirm_duration_s < OFFICIAL_MIN_DURATION_S:
        notes.append(f"the confirmation ran {plan.confirm_duration_s:g} s, under the official "
                     f"{OFFICIAL_MIN_DURATION_S} s (--confirm-duration)")
    return SlaResult(
        scenario=plan.scenario.value,
        limits=SlaLimits(plan.limits.ttft_ms, plan.limits.tpot_ms, plan.official_limits),
        compliant=not notes,
        compliance_notes=tuple(notes),
        search=SearchSettings(
            tolerance=plan.tolerance, probe_duration_s=plan.probe_duration_s,
            probe_queries=PROBE_QUERIES, confirm_duration_s=plan.confirm_duration_s,
            max_probes=plan.max_probes, attempts_per_rate=ATTEMPTS_PER_RATE,
            wait_for_server_s=plan.wait_for_server_s),
        start=Start(qps=plan.start_qps, rule=plan.start_rule))


def _write(plan: SlaPlan, state: _State) -> None:
    state.sla.write(plan.output_dir)
