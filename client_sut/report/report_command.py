"""`client-sut report`: one report.html from the folders runs, searches and sweeps wrote."""

from __future__ import annotations

import argparse
from pathlib import Path

from client_sut.errors import EXIT_OK

def add_parser(commands) -> None:
    report = commands.add_parser(
        "report", help="one self-contained report.html from run, sla and sweep folders",
        description="Write report.html (nothing fetched when it is opened) and its figures as "
                    "SVG files beside it, from the folders `run`, `sla` and `sweep` wrote; "
                    "several runs or sweeps are also put side by side, or with --nodes "
                    "combined as the nodes of one benchmark.")
    report.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    report.add_argument("--output-dir", type=Path, metavar="DIR",
                        help="where report.html goes (default: DIR for one folder, ./report for "
                             "several)")
    report.add_argument("--nodes", action="store_true",
                        help="the run folders are the nodes of one benchmark (one client per "
                             "node, run at once): a per-node table and the combined figures")
    report.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from client_sut.report import write_report

    default = args.dirs[0] if len(args.dirs) == 1 else Path("report")
    print(f"report: {write_report(args.dirs, args.output_dir or default, nodes=args.nodes)}")
    return EXIT_OK
