"""MLCommons' submission checker, run unmodified as a program, and its verdict.

It is not on PyPI: the user points `--checker` at a checkout of mlcommons/inference. It needs
Python and PyYAML. It ends with `SUMMARY: submission looks OK` (exit 0) or `SUMMARY: submission
has errors` (exit 1), and logs each problem on a line with `ERROR]`.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from client_sut.errors import UsageError
from client_sut.submission.layout import CHECKER_VERSION

CHECKER_TIMEOUT_S = 600
OK_LINE = "SUMMARY: submission looks OK"


@dataclass(frozen=True, slots=True)
class CheckerVerdict:
    passed: bool
    returncode: int
    errors: tuple[str, ...]
    log: Path


def tools_dir(checkout: Path) -> Path:
    """The folder the checker runs from, after checking it is there."""
    tools = checkout / "tools" / "submission"
    if not (tools / "submission_checker" / "main.py").is_file():
        raise UsageError(f"{checkout} holds no tools/submission/submission_checker/main.py; pass "
                         f"--checker with a checkout of github.com/mlcommons/inference")
    return tools


def error_lines(output: str) -> tuple[str, ...]:
    return tuple(line.split(" ERROR] ", 1)[1].strip() for line in output.splitlines()
                 if " ERROR] " in line)


def run_checker(checkout: Path, root: Path, submitter: str, log: Path, csv: Path,
                skip_dataset_size_check: bool) -> CheckerVerdict:
    command = [sys.executable, "-m", "submission_checker.main", "--input", str(root.resolve()),
               "--version", CHECKER_VERSION, "--submitter", submitter, "--csv", str(csv.resolve())]
    if skip_dataset_size_check:
        command.append("--skip-dataset-size-check")
    completed = subprocess.run(command, cwd=tools_dir(checkout), capture_output=True, text=True,
                               timeout=CHECKER_TIMEOUT_S)
    output = completed.stdout + completed.stderr
    log.write_text(" ".join(command) + "\n\n" + output, encoding="utf-8")
    return CheckerVerdict(completed.returncode == 0 and OK_LINE in output, completed.returncode,
                          error_lines(output), log)
