"""Outlier ejection: a replica that has died stops drawing the load.

Least-outstanding balancing alone sends most of the load to a dead replica: its requests fail at
once, so it always has the fewest in flight. Load balancers answer this with outlier detection;
this is Envoy's consecutive-failure ejection, for the failures a dead server gives: an endpoint
whose connections are refused, fail to open or break EJECT_AFTER times in a row is taken out of
the balance (its share goes to the others), its health path is asked every PROBE_EVERY_S, and it
is put back when it answers. The last endpoint in the balance is never taken out: with nowhere
else to go its requests fail, as they would. HTTP errors and timeouts do not eject: a server
that answers, however badly, is measured as it is.

The run's verdict is not softened by it: the requests that failed still fail the run, on the
endpoint that failed them (analysis/failures.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from client_sut.records import ErrorKind, RequestError

EJECT_AFTER = 5  # Envoy's consecutive_gateway_failure default
PROBE_EVERY_S = 1.0
CONNECTION_FAILURES = frozenset({ErrorKind.REFUSED, ErrorKind.CONNECT, ErrorKind.DISCONNECTED})


@dataclass(frozen=True, slots=True)
class Ejection:
    """An endpoint out of the balance, from `ejected_ns` to `readmitted_ns` (client clock)."""

    endpoint: str
    ejected_ns: int
    reason: str
    readmitted_ns: int | None = None  # None: still out when the run ended
    readmitted_because: str | None = None
    worker: int | None = None  # the worker process whose streams ejected it; None: the run's

    def to_json(self, run_end_ns: int) -> dict:
        until = self.readmitted_ns if self.readmitted_ns is not None else run_end_ns
        return {"ejected_ns": self.ejected_ns, "readmitted_ns": self.readmitted_ns,
                "out_s": round(max(0, until - self.ejected_ns) / 1e9, 3),
                "reason": self.reason,
                "readmitted_because": self.readmitted_because or "still out at the run's end",
                "worker": self.worker}


class Outliers:
    """Each endpoint's run of connection failures, and which are out of the balance. On the
    event loop thread only."""

    def __init__(self, urls: list[str], eject_after: int = EJECT_AFTER,
                 worker: int | None = None) -> None:
        self._eject_after = eject_after
        self._worker = worker
        self._streak = dict.fromkeys(urls, 0)
        self.out: dict[str, Ejection] = {}

    def is_out(self, url: str) -> bool:
        return url in self.out

    def outcome(self, url: str, error: RequestError | None, now_ns: int) -> Ejection | None:
        """A request to `url` ended; the ejection it caused, if it did."""
        if error is None or error.kind not in CONNECTION_FAILURES:
            self._streak[url] = 0
            return None
        self._streak[url] += 1
        if (self._streak[url] < self._eject_after or url in self.out
                or len(self.out) + 1 >= len(self._streak)):  # never the last one in
            return None
        ejection = Ejection(url, now_ns, f"{self._streak[url]} connections in a row failed "
                                         f"(last: {error.message})", worker=self._worker)
        self.out[url] = ejection
        return ejection

    def readmit(self, url: str, now_ns: int, because: str) -> Ejection:
        self._streak[url] = 0
        return replace(self.out.pop(url), readmitted_ns=now_ns, readmitted_because=because)


class EjectionLog:
    """Every ejection of a run, as it was last heard of (ejected, then perhaps put back), each
    said as it happens; from this process's pool or from worker processes'."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._latest: dict[tuple[int | None, str, int], Ejection] = {}

    def __call__(self, ejection: Ejection) -> None:
        self._latest[(ejection.worker, ejection.endpoint, ejection.ejected_ns)] = ejection
        who = "" if ejection.worker is None else f" (client worker {ejection.worker})"
        if ejection.readmitted_ns is None:
            self._say(f"{ejection.endpoint} taken out of the balance{who}: {ejection.reason}")
        else:
            self._say(f"{ejection.endpoint} back in the balance{who} after "
                      f"{(ejection.readmitted_ns - ejection.ejected_ns) / 1e9:.1f} s: "
                      f"{ejection.readmitted_because}")

    def of(self, endpoint: str, run_end_ns: int) -> list[dict]:
        """results.json's `endpoints[].ejections` for one endpoint, in time order."""
        return [e.to_json(run_end_ns) for e in sorted(self._latest.values(),
                                                      key=lambda e: e.ejected_ns)
                if e.endpoint == endpoint]
