"""One run of a series (`sla`'s probes, `sweep`'s points, `submission`'s runs) as a `client-sut
run` process of its own.

LoadGen reads its configuration once per process: a second `FromConfig` in the same process logs
"Multiple conf files are used. This is not valid for official submission." as an error in the
next run's detail log (checked with mlcommons-loadgen 6.0), which the submission checker
rejects. So every probe is a fresh process; the tokenized dataset is cached between them.
Each child runs in a session of its own, so a Ctrl-C at the terminal reaches only the search,
which hands exactly one interrupt to the child: two would make the child exit at once, before
writing what it measured.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from client_sut.errors import EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from client_sut.runs.server_guard import ServerGuard


@dataclass(frozen=True, slots=True)
class RunOutput:
    exit_status: int
    results: dict | None  # results.json, when the run got as far as writing it
    wall_s: float
    error_line: str | None  # the run's last line on stderr, for bad input (exit 2)


class ChildRun:
    """Starts `client-sut run ARGS` with its output in DIR/run.log; forwards one interrupt."""

    def __init__(self, args: list[str], output_dir: Path) -> None:
        output_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir = output_dir
        self.log_path = output_dir / "run.log"
        self._interrupted = False
        self._started = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "client_sut", "run", "--output-dir", str(output_dir),
                 *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def interrupt(self) -> None:
        if not self._interrupted and self.process.poll() is None:
            self._interrupted = True
            self.process.send_signal(signal.SIGINT)

    def wait(self) -> RunOutput:
        status = self.process.wait()
        results_path = self.output_dir / "results.json"
        results = json.loads(results_path.read_text()) if results_path.exists() else None
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return RunOutput(status, results, round(time.monotonic() - self._started, 1),
                         lines[-1] if status == EXIT_USAGE and lines else None)


@dataclass
class Series:
    """The runs one command makes one after another (`sla`'s probes, `sweep`'s points), each a
    ChildRun with the deployment's flags and one token cache. No run starts against a server
    that does not answer (checked before every run after the first); an interrupt reaches the
    run under way, once, and no run starts after it."""

    run_args: tuple[str, ...]  # the deployment flags, passed to every run
    token_cache: Path
    guard: ServerGuard | None = None
    interrupted: bool = False
    child: ChildRun | None = None
    runs: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return round(time.monotonic() - self.started, 1)

    @contextmanager
    def signals_forwarded(self) -> Iterator[None]:
        def on_signal(_signum, _frame) -> None:
            self.interrupted = True
            if self.child is not None:
                self.child.interrupt()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def launch(self, output_dir: Path, name: str, args: list[str],
               announce: Callable[[], None]) -> RunOutput:
        """One run into output_dir. Bad input in the first run (nothing measured yet) is a
        UsageError; later, a run that fails its checks (a server gone) wrote no results."""
        if self.interrupted:  # the signal came before this run started: it never starts
            return RunOutput(EXIT_INTERRUPTED, None, 0.0, None)
        if self.runs:  # the first run's own checks say best what is wrong with an endpoint
            self.guard.before(name)
        announce()
        self.child = ChildRun([*self.run_args, *args, "--token-cache", str(self.token_cache)],
                              output_dir)
        if self.interrupted:  # it came while the run was being started
            self.child.interrupt()
        try:
            output = self.child.wait()
        finally:
            self.child = None
        self.runs += 1
        if output.exit_status == EXIT_USAGE and self.runs == 1:
            message = output.error_line or f"see {output_dir / 'run.log'}"
            raise UsageError(message.split(": error: ", 1)[-1])
        return output
