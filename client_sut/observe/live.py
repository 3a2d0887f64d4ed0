"""The live view: a process of its own that draws the run's progress on the terminal with rich.

Drawing a table takes a millisecond or two of an interpreter lock; in the client's process that
is time its event loop would wait. So the run only writes a snapshot line (JSON) to this
process's stdin twice a second, and this process redraws a few times a second on stderr (the
terminal the run's messages go to). It ends when its stdin closes, leaving the last frame on
screen; Ctrl-C is the run's to handle, not its.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys

from client_sut.observe.progress import ProgressSnapshot

REFRESH_PER_SECOND = 4
STOP_TIMEOUT_S = 5.0


def _limit_style(value: float | None, limit: float | None) -> str:
    if value is None or limit is None:
        return ""
    return "red" if value > limit else "green"


def render(snapshot: ProgressSnapshot):
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    s = snapshot
    table = Table(title=f"client-sut: {s.scenario}", show_header=False, box=None,
                  title_justify="left", padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    done = min(s.elapsed_s, s.min_duration_s) if s.min_duration_s else s.elapsed_s
    table.add_row("elapsed", f"{s.elapsed_s:,.0f} s",
                  ProgressBar(total=max(s.min_duration_s, 1e-9), completed=done, width=30))
    table.add_row("to min duration", f"{s.remaining_s:,.0f} s", "")
    table.add_row("issued / done / in flight", f"{s.issued:,} / {s.completed:,} / "
                                                f"{s.in_flight:,}", "")
    table.add_row("requests/s, tokens/s", f"{s.requests_per_s:,.1f}, {s.tokens_per_s:,.0f}", "")
    for name, value, limit in (("TTFT p99 (rolling)", s.ttft_p99_ms, s.ttft_limit_ms),
                               ("TPOT p99 (rolling)", s.tpot_p99_ms, s.tpot_limit_ms)):
        shown = "-" if value is None else f"{value:,.2f} ms"
        table.add_row(name, f"[{_limit_style(value, limit)}]{shown}[/]" if limit else shown,
                      "" if limit is None else f"limit {limit:,.0f} ms")
    table.add_row("errors", f"[{'red' if s.errors else 'green'}]{s.errors:,}[/]", "")
    waiting = "-" if s.server_waiting is None else f"{s.server_waiting:,.0f}"
    kv = "-" if s.kv_cache_usage is None else f"{s.kv_cache_usage * 100:.1f}%"
    table.add_row("server waiting / KV cache", f"{waiting} / {kv}", "")
    lag = "-" if s.loop_lag_p99_ms is None else f"{s.loop_lag_p99_ms:,.2f} ms"
    table.add_row("client loop lag p99", lag, "")
    return table


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from rich.console import Console
    from rich.live import Live

    console = Console(file=sys.stderr)
    with Live(console=console, refresh_per_second=REFRESH_PER_SECOND, transient=False) as live:
        for line in sys.stdin:
            try:
                snapshot = ProgressSnapshot.from_json(line)
            except (ValueError, TypeError):
                continue  # a line cut short when the run could not wait for the pipe
            live.update(render(snapshot))
    return 0


class LiveView:
    """The run's handle on the live view: `show` never blocks the loop (a snapshot the view
    cannot take at once is dropped, the next one replaces it)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "client_sut.observe.live"],
                                        stdin=subprocess.PIPE)
        descriptor = self.process.stdin.fileno()
        fcntl.fcntl(descriptor, fcntl.F_SETFL,
                    fcntl.fcntl(descriptor, fcntl.F_GETFL) | os.O_NONBLOCK)

    def show(self, snapshot: ProgressSnapshot) -> None:
        try:
            os.write(self.process.stdin.fileno(), (snapshot.to_json() + "\n").encode())
        except (BlockingIOError, BrokenPipeError):
            pass  # the view is behind (or gone): the run does not wait for it

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    sys.exit(main())
