"""`client-sut sweep`: its flags, the points planned from them, run, reported and summed up."""

from __future__ import annotations

import argparse
from pathlib import Path

from client_sut.config import Scenario
from client_sut.errors import UsageError
from client_sut.flags import (
    deployment_flags,
    limit_flags,
    limits_of,
    number_list,
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
    sweep = commands.add_parser(
        "sweep", help="the throughput-interactivity curve and its Pareto front (MLPerf "
                      "Endpoints)",
        description="One real LoadGen run per point, at fixed concurrency (the client holding "
                    "exactly C requests in flight) or at fixed Server rates, each a whole "
                    "number of passes over the dataset. Writes DIR/sweep.json and one run "
                    "folder per point. --max-concurrency C plans the points up to C by the "
                    "Endpoints regions.")
    sweep.set_defaults(deployment_flags=deployment_flags(sweep))
    sweep.add_argument("--concurrency", type=number_list(int), metavar="LIST",
                       help="the concurrency points, comma-separated (then an Offline point)")
    sweep.add_argument("--rates", type=number_list(float), metavar="LIST",
                       help="Server points at these QPS instead, comma-separated")
    sweep.add_argument("--point-duration", type=float, metavar="S",
                       help="least duration of each point (default: the official 600 s in "
                            "Ultra-Low, 1,200 s elsewhere; shorter is noted as not compliant)")
    limit_flags(sweep)
    output_flags(sweep, "results/sweep")
    sweep.add_argument("--emit", action="append", default=[], metavar="LAYOUT",
                       help="also lay the points out for MLCommons' checkers: endpoints-v61 (the "
                            "MLPerf Inference checker's endpoints mode: adds a Server or Offline "
                            "point and an accuracy run) or endpoints-v1 (r<N>/ points)")
    sweep.add_argument("--system-file", type=Path, metavar="PATH",
                       help="the TOML file describing the system, for --emit")
    sweep.add_argument("--checker", type=Path, metavar="DIR",
                       help="a checkout of mlcommons/inference: run its checker on "
                            "endpoints-v61")
    sweep.add_argument("--division", default="closed", help="closed|open, for --emit")
    sweep.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from client_sut.data.dataset import load_samples
    from client_sut.sweep.command import front_lines, run_sweep
    from client_sut.sweep.plan import SweepPlan, plan_points

    emit = tuple(dict.fromkeys(args.emit))
    points = plan_points(args.concurrency, args.max_concurrency, args.rates, emit)
    if args.point_duration is not None and not args.point_duration > 0:
        raise UsageError(f"--point-duration must be greater than 0, got {args.point_duration}")
    deployment = checked_deployment(args)
    samples = len(load_samples(deployment.config.dataset, deployment.config.total_sample_count))
    plan = SweepPlan(points=points, output_dir=args.output_dir, run_args=passed_on(args),
                     dataset_samples=samples,
                     limits=limits_of(args, Scenario.SERVER) or official_limits(Scenario.SERVER),
                     point_duration_s=args.point_duration, emit=emit,
                     system_file=args.system_file, checker=args.checker,
                     division=args.division,
                     endpoints=deployment.endpoints, credentials=deployment.config.credentials)
    say = say_as("sweep")
    sweep, status = run_sweep(plan, say)
    report_unless_told(args, say)
    print("\n".join(front_lines(sweep)))
    print(f"  {len(sweep.points)} points in {sweep.elapsed_s:g} s, {sweep.verdict}; "
          f"front: {', '.join(sweep.front) or 'none'}; {args.output_dir / 'sweep.json'}")
    return status
