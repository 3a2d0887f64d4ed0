"""`client-sut`: assembles the commands, each of which owns its flags (add_parser) and its work
(main), and turns what they raise into one line and an exit status."""

from __future__ import annotations

import argparse
import sys

from client_sut import __version__
from client_sut.accuracy import evaluate_command, reference_command
from client_sut.errors import EXIT_INTERRUPTED, EXIT_USAGE, RunStopped, UsageError
from client_sut.flags import Parser
from client_sut.report import report_command
from client_sut.runs import calibrate_command, endpoints_command, run_command
from client_sut.sla import sla_command
from client_sut.submission import submission_command
from client_sut.sweep import sweep_command

COMMANDS = (run_command, sla_command, sweep_command, evaluate_command, reference_command,
            calibrate_command, report_command, endpoints_command, submission_command)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="client-sut", description="MLPerf-grade benchmark client for LLM "
                                                    "deployments (Llama-3.1-8B, CNN/DailyMail).")
    parser.add_argument("--version", action="version", version=f"client-sut {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"client-sut {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunStopped as exc:  # a server gone while a command made its runs (sla keeps its own)
        print(f"client-sut {args.command}: stopped: {exc.reason}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:  # before the run started (a run handles its own signals)
        print(f"client-sut {args.command}: interrupted before anything was measured",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
