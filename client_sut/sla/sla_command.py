"""`client-sut sla`: its flags, the search planned from them, run, reported and answered."""

from __future__ import annotations

import argparse
from pathlib import Path

from client_sut.config import OFFICIAL_MIN_DURATION_S, Scenario, parse_choice
from client_sut.errors import UsageError
from client_sut.flags import (
    deployment_flags,
    limit_flags,
    limits_of,
    official_limits,
    passed_on,
)
from client_sut.runs.series import (
    checked_deployment,
    output_flags,
    report_unless_told,
    say_as,
)


def add_parser(commands) -> None:
    sla = commands.add_parser(
        "sla", help="the highest load served within the p99 latency limits, confirmed VALID",
        description="Search the highest Server (or Interactive) target QPS that LoadGen calls "
                    "VALID, then confirm it with a run of the official duration. Writes "
                    "DIR/sla.json and one run folder per probe.")
    sla.set_defaults(deployment_flags=deployment_flags(sla))
    sla.add_argument("--scenario", default="Server", help="Server|Interactive")
    limit_flags(sla)
    sla.add_argument("--probe-duration", type=float, default=30.0,
                     metavar="S", help="least duration of a search probe (default %(default)g s; "
                                       "a probe also runs at least 505 queries)")
    sla.add_argument("--confirm-duration", type=float, default=float(OFFICIAL_MIN_DURATION_S),
                     metavar="S", help="duration of the confirmation run (default: the official "
                                       "%(default)g s)")
    sla.add_argument("--tolerance", type=float, default=0.03, metavar="R",
                     help="stop when the highest pass and lowest fail are within this relative "
                          "distance (default %(default)g)")
    sla.add_argument("--max-probes", type=int, default=12, metavar="N",
                     help="most search probes, repeats included (default %(default)d)")
    sla.add_argument("--start-qps", type=float, metavar="Q",
                     help="first rate to probe (default: 0.75 x a short Offline run's samples/s)")
    sla.add_argument("--from-sweep", type=Path, metavar="DIR",
                     help="start from the rate the curve of `client-sut sweep` in DIR predicts "
                          "for the limits (where its p99s reach them)")
    sla.add_argument("--wait-for-server", type=float, metavar="S",
                     help="when a server stops answering during a probe, wait up to S seconds "
                          "for it to answer /health again (a restart), then repeat the probe "
                          "(default: the search stops, exit status 3)")
    output_flags(sla, "results/sla")
    sla.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from client_sut.sla.command import SlaPlan, run_search, start_from_sweep

    scenario = parse_choice(Scenario, args.scenario, "--scenario")
    limits = limits_of(args, scenario)
    if args.from_sweep and args.start_qps:
        raise UsageError("give --start-qps or --from-sweep, not both")
    start_qps, start_rule = args.start_qps, "--start-qps"
    if args.from_sweep:
        start_qps, start_rule = start_from_sweep(args.from_sweep,
                                                 limits or official_limits(scenario))
    deployment = checked_deployment(args, scenario=scenario, limits=limits)
    plan = SlaPlan(scenario=scenario,
                   limits=limits or official_limits(scenario),
                   official_limits=limits is None or limits == official_limits(scenario),
                   output_dir=args.output_dir,
                   run_args=passed_on(args),
                   probe_duration_s=args.probe_duration, confirm_duration_s=args.confirm_duration,
                   tolerance=args.tolerance, max_probes=args.max_probes, start_qps=start_qps,
                   start_rule=start_rule, start_predicted=bool(args.from_sweep),
                   endpoints=deployment.endpoints, credentials=deployment.config.credentials,
                   wait_for_server_s=args.wait_for_server)
    say = say_as("sla")
    sla, status = run_search(plan, say)
    report_unless_told(args, say)
    print(sla.answer_line())
    if check := sla.self_check:
        print(f"  client self-check at the answer: issue lag p99 {check.issue_lag_ms['p99']} ms, "
              f"event-loop lag p99 {check.event_loop_lag_ms['p99']} ms; "
              + ("; ".join(check.warnings) if check.warnings else "no warnings"))
    print(f"  {len(sla.probes)} probes in {sla.elapsed_s:g} s; "
          f"{args.output_dir / 'sla.json'}")
    return status
