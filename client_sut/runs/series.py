"""What `sla` and `sweep` do alike around their series of runs: the same output flags, the
deployment checked and its servers found before the first run, messages under the command's
name, and the report after the last."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from client_sut.config import RunConfig
from client_sut.flags import deployment_config

Say = Callable[[str], None]


def output_flags(parser: argparse.ArgumentParser, default_dir: str) -> None:
    parser.add_argument("--output-dir", type=Path, default=Path(default_dir), metavar="DIR")
    parser.add_argument("--no-report", action="store_true",
                        help="do not write report.html at the end")


@dataclass(frozen=True, slots=True)
class Deployment:
    config: RunConfig  # the deployment flags, checked
    endpoints: tuple[str, ...]  # the servers found: every run of the series is made against them


def checked_deployment(args: argparse.Namespace, **changes) -> Deployment:
    """Everything checkable before any run (flags, credentials, the folder), then the servers
    found; bad input is a UsageError before anything is sent."""
    # Here, not at the top: every command's parser imports this module; discovery brings aiohttp.
    from client_sut.config import validate
    from client_sut.preflight.discovery import discover

    config = validate(replace(deployment_config(args, args.output_dir), **changes))
    found = discover(config.endpoints, config.endpoints_files)
    return Deployment(config, tuple(endpoint.url for endpoint in found))


def say_as(command: str) -> Say:
    def say(message: str) -> None:
        print(f"[{command}] {message}", file=sys.stderr, flush=True)

    return say


def report_unless_told(args: argparse.Namespace, say: Say) -> None:
    """The series' report.html, beside what it wrote, unless --no-report."""
    if not args.no_report:
        from client_sut.report import report_after_run

        report_after_run([args.output_dir], args.output_dir, say)
