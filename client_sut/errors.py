"""Errors that end a command with a one-line message and a defined exit status."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # finished, but INVALID, failed accuracy or had request errors
EXIT_USAGE = 2  # bad input or configuration, found before any request is sent
# A command that makes many runs (sla, submission) stopped because a server stopped answering:
# what it measured is kept, and nothing was concluded from the runs the server did not finish.
EXIT_SERVER_LOST = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input or configuration: reported as one line, exit status 2, nothing sent."""


class RunStopped(Exception):
    """A command that makes many runs stopped before its end (a server stopped answering): why,
    during or before which run, and the command's exit status. What it measured is kept."""

    def __init__(self, reason: str, during: str, exit_status: int = EXIT_SERVER_LOST) -> None:
        super().__init__(reason)
        self.reason = reason
        self.during = during
        self.exit_status = exit_status
