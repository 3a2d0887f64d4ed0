"""`client-sut calibrate`: its flags, and the measurement made and summed up."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from client_sut.errors import EXIT_OK

def add_parser(commands) -> None:
    calibrate = commands.add_parser(
        "calibrate", help="measure this machine's client capacity and timing error",
        description="Drive a built-in loopback token emitter through the real client and "
                    "LoadGen: client CPU per token, the most tokens/s and requests/s it "
                    "sustains, and its TTFT/TPOT/ITL error against what the emitter recorded.")
    calibrate.add_argument("--output-dir", type=Path, default=Path("results/calibrate"),
                           metavar="DIR", help="where calibrate.json and the runs go")
    calibrate.add_argument("--quick", action="store_true",
                           help="a small smoke test (seconds), not a measurement to rely on")
    calibrate.add_argument("--workers", type=int, default=0, metavar="N",
                           help="measure the client with its streams over N worker processes, "
                                "as `run --workers N` runs (default 0)")
    calibrate.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from client_sut.runs.calibrate import CalibrationPlan, calibrate, summary_lines

    plan = replace(CalibrationPlan.quick() if args.quick else CalibrationPlan(),
                   workers=args.workers)
    report = calibrate(args.output_dir, plan,
                       lambda message: print(message, file=sys.stderr, flush=True))
    print("\n".join(summary_lines(report, args.output_dir / "calibrate.json")))
    return EXIT_OK
