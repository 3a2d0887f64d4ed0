"""Errors that end a command with a one-line message and a defined exit status."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # finished, but INVALID, failed accuracy or had request errors
EXIT_USAGE = 2  # bad input or configuration, found before any request is sent
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input or configuration: reported as one line, exit status 2, nothing sent."""
