"""Open files: what a run needs, what the host allows, checked before anything is sent.

Every connection is a file descriptor, and until its first token arrives a connection whose reads
the kernel stamps holds a second one (measure/transport.py duplicates its socket). A host's
default soft limit (often 1,024) holds a few hundred streams; past it, connects fail with
"Too many open files", each failure a request lost. So every client process raises its soft
limit to the hard one at start (an unprivileged process may), and a run whose busiest process
could not hold its streams under the hard limit is refused with how to raise it (exit 2).
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

from client_sut.errors import UsageError

# Descriptors a client process holds besides its streams: stdio, the event loop's epoll and
# self-pipe, LoadGen's log files, the stamping keeper, the tokenizer's files as it loads, the
# worker channels and their pipes, health checks. Measured: 21 at 4,000 streams (8,021 open,
# bench/bench_streams.py); the rest is margin.
FIXED_FILES = 96
# Per endpoint, besides its streams: the metrics scraper's connection and a health check's.
PER_ENDPOINT_FILES = 2


@dataclass(frozen=True, slots=True)
class FileLimits:
    soft: int
    hard: int  # resource.RLIM_INFINITY is given as a large number
    raised_from: int  # the soft limit the process started with


def raise_open_files() -> FileLimits:
    """Raises this process's soft open-file limit to its hard limit; returns both after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # a platform that caps it lower (macOS: OPEN_MAX)
            pass
    raised, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return FileLimits(_finite(raised), _finite(hard), _finite(soft))


def _finite(limit: int) -> int:
    return 2 ** 31 - 1 if limit == resource.RLIM_INFINITY else limit


@dataclass(frozen=True, slots=True)
class FileBudget:
    """What the busiest client process needs open at once, at full concurrency."""

    streams: int  # connections held by the busiest process: its share of every endpoint's cap
    stamped: bool  # each waiting for its first token holds a duplicate
    endpoints: int

    @property
    def per_stream(self) -> int:
        return 2 if self.stamped else 1

    @property
    def rest(self) -> int:
        return self.endpoints * PER_ENDPOINT_FILES + FIXED_FILES

    @property
    def needed(self) -> int:
        return self.streams * self.per_stream + self.rest

    def streams_within(self, limit: int) -> int:
        """The most streams a process could hold under `limit`."""
        return max(0, (limit - self.rest) // self.per_stream)


def file_budget(max_concurrency: int, endpoints: int, workers: int, stamped: bool) -> FileBudget:
    """`max_concurrency` is per endpoint; with workers each holds its share of it for every
    endpoint (measure/workers.concurrency_shares), and the LoadGen process holds none."""
    share = math.ceil(max_concurrency / workers) if workers else max_concurrency
    return FileBudget(share * endpoints, stamped, endpoints)


def check_open_files(budget: FileBudget, limits: FileLimits, workers: int) -> dict:
    """results.json's `client.resources`; a UsageError where the hard limit cannot hold it."""
    if budget.needed > limits.soft:  # the soft limit raised as far as it goes
        per_process = "per worker process " if workers else ""
        limit = _round_up(budget.needed)
        most = budget.streams_within(limits.soft) // budget.endpoints
        fits = (f"or lower --max-concurrency to {most * max(workers, 1)}" if most
                else "or use fewer endpoints")
        raise UsageError(
            f"this run needs up to {budget.needed:,} open files {per_process}({budget.streams:,} "
            f"streams{', each with a duplicate until its first token' if budget.stamped else ''}"
            f", plus {budget.rest} for the rest) but the open-file limit is {limits.soft:,}"
            + ("" if limits.soft == limits.hard else f" (hard {limits.hard:,})")
            + f": raise it (as root: ulimit "
            f"-Hn {limit}; Docker: --ulimit nofile={limit}:{limit}; "
            f"systemd: LimitNOFILE=), {fits}")
    return {"open_files": {"needed": budget.needed, "streams": budget.streams,
                           "duplicates_until_first_token": budget.stamped,
                           "soft_limit": limits.soft, "hard_limit": limits.hard,
                           "soft_limit_at_start": limits.raised_from}}


def _round_up(need: int) -> int:
    """A limit to suggest: the next power of two at or above the need."""
    return 1 << (need - 1).bit_length()
