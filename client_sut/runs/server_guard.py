"""The rule for every command that makes many runs (`sla`, `submission`, `sweep`): a run during
which a server stopped answering measured no deployment, and no run starts against a server
that does not answer.

Before each run the servers' health paths are asked; after it, its results.json says per
endpoint whether the server stopped answering (`endpoints[].health`). Either way the command
stops (RunStopped, exit status EXIT_SERVER_LOST) keeping what it measured, unless it was told
to wait for the servers to come back (`--wait-for-server`), at most MAX_REPEATS times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from client_sut.analysis.health import lost_reason
from client_sut.errors import EXIT_INTERRUPTED, RunStopped
from client_sut.measure.health import not_answering, wait_until_answering
from client_sut.security import Credentials

# How long a server gets to answer its health path between runs: it has just been under load.
BEFORE_RUN_TIMEOUT_S = 5.0
MAX_REPEATS = 3  # a server that keeps dying is not waited for again and again


@dataclass
class ServerGuard:
    endpoints: Sequence[str]
    credentials: Credentials
    wait_s: float | None  # None: stop at once when a server is gone
    say: Callable[[str], None]
    interrupted: Callable[[], bool] = lambda: False
    repeats: int = 0
    # Each endpoint's health path, as its last run found its kind (a LiteLLM proxy's /health
    # calls every model behind it: it is never asked).
    health_paths: dict[str, str | None] = field(default_factory=dict)

    def before(self, during: str) -> None:
        """Returns once every server answers; raises RunStopped when one does not (after
        waiting for it, when allowed)."""
        silent = not_answering(self.endpoints, self.credentials, BEFORE_RUN_TIMEOUT_S,
                               self.health_paths)
        if silent and self.wait_s is not None:
            silent = wait_until_answering([c.endpoint for c in silent], self.credentials,
                                          self.wait_s, self.say, self.interrupted,
                                          self.health_paths)
            if not silent and not self.interrupted():
                self.say(f"every server answers again: {during} starts")
        if silent and not self.interrupted():
            waited = f" within --wait-for-server {self.wait_s:g} s" if self.wait_s else ""
            reason = "; ".join(f"the server at {c.endpoint} does not answer{waited} before "
                               f"{during} ({c.detail})" for c in silent)
            self.say(reason)
            raise RunStopped(reason, during)

    def lost(self, results: dict | None, exit_status: int, during: str) -> str | None:
        """Why the run `during` measured no deployment because a server was gone, or None."""
        if results is not None:
            self.health_paths.update({e["url"]: e["dialect"]["health_path"]
                                      for e in results.get("endpoints", []) if "dialect" in e})
            return lost_reason(results.get("endpoints", []), during)
        if exit_status == EXIT_INTERRUPTED:
            return None
        silent = not_answering(self.endpoints, self.credentials, BEFORE_RUN_TIMEOUT_S,
                               self.health_paths)
        return "; ".join(f"the server at {c.endpoint} stopped answering during {during} "
                         f"({c.detail}); the run wrote no results" for c in silent) or None

    def may_repeat(self, reason: str, during: str) -> None:
        """After a run a server was lost in: returns when the run may be repeated (the wait for
        the server is the repeat's `before`); raises RunStopped when it may not."""
        if self.wait_s is None:
            raise RunStopped(reason, during)
        self.repeats += 1
        if self.repeats > MAX_REPEATS:
            reason = f"{reason}; servers were lost {self.repeats} times in this series"
            self.say(reason)
            raise RunStopped(reason, during)
