"""Was a server there for the whole run? A dead or restarting server told from an overloaded
one, from what the client saw. Pure functions.

A server that is gone shows it at the connection: its port refuses connections, its health path
does not answer, or every request it had in flight breaks at once. An overloaded server still
answers: it times out, says 429 or 503, answers its health path late. Only the first kind stops
a run's figures from describing the deployment: a search or a series of runs must stop, or wait
for the server to come back, rather than read the failures as the deployment's capacity.

Signals, per endpoint, on the client's clock:
- up: a request answered (its first byte), or the health path answered;
- down: a connection refused, the health path refused, reset or not ready (5xx), or a burst:
  every request in flight (two or more) broken within BURST_NS;
- lost: one request broken mid-response (reset, or the stream cut without [DONE]); alone it is
  no proof (a flaky connection), but it dates the moment a server died when a down follows.
An outage starts at the first down (dated back to the broken requests since the last up) and
ends at the next up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from client_sut.records import Answer, ErrorKind, HealthCheck, RequestRecord

BURST_NS = 50_000_000  # broken within 50 ms of each other: the server's end, not the network's
LOST_KINDS = (ErrorKind.DISCONNECTED, ErrorKind.TRUNCATED)
ANSWERING, OVERLOADED, STOPPED, RESTARTED = "answering", "overloaded", "stopped", "restarted"
LOST_STATES = (STOPPED, RESTARTED)
UP, DOWN, LOST = "up", "down", "lost"


@dataclass(frozen=True, slots=True)
class Outage:
    stopped_ns: int
    came_back_ns: int | None  # None: it did not come back before the run ended
    refused: int  # requests whose connection was refused
    broken: int  # requests broken mid-response
    health_down: int  # health checks refused, reset or not ready
    burst: int  # requests in flight that broke at once (0: none)


@dataclass(frozen=True, slots=True)
class _Signal:
    t_ns: int
    kind: str  # UP, DOWN or LOST
    what: str  # "refused", "broken", "health", "burst", "answered"
    size: int = 1  # a burst's requests


def _signals(records: Sequence[RequestRecord], checks: Sequence[HealthCheck]) -> list[_Signal]:
    signals = []
    for record in records:
        if record.error is None:
            signals.append(_Signal(record.first_byte_ns or record.end_ns, UP, "answered"))
        elif record.error.kind is ErrorKind.REFUSED:
            signals.append(_Signal(record.end_ns, DOWN, "refused"))
        elif record.error.kind in LOST_KINDS:
            signals.append(_Signal(record.end_ns, LOST, "broken"))
    for check in checks:
        if check.answer is Answer.ANSWERED:
            signals.append(_Signal(check.t_ns, UP, "answered"))
        elif check.answer is Answer.DOWN:
            signals.append(_Signal(check.t_ns, DOWN, "health"))
    signals += [_Signal(t_ns, DOWN, "burst", size) for t_ns, size in _bursts(records)]
    # At one instant, a down before an up: a restart is only seen after the death.
    return sorted(signals, key=lambda s: (s.t_ns, s.kind != DOWN))


def _bursts(records: Sequence[RequestRecord]) -> list[tuple[int, int]]:
    """When every request in flight (two or more) broke within BURST_NS: the burst's start and
    its size. Requests sent after the first break are no part of it: one after another failing
    alike is not a burst."""
    broken = sorted((r for r in records if r.error is not None and r.error.kind in LOST_KINDS),
                    key=lambda r: r.end_ns)
    starts, i = [], 0
    while i < len(broken):
        first = broken[i].end_ns
        window = [r for r in broken[i:] if r.end_ns - first <= BURST_NS]
        together = sum(1 for r in window if r.send_ns < first)
        if together >= 2 and together >= sum(1 for r in records
                                             if r.send_ns < first <= r.end_ns):
            starts.append((first, together))
        i += len(window)
    return starts


def outages(records: Sequence[RequestRecord], checks: Sequence[HealthCheck]) -> list[Outage]:
    """Every stretch in which the endpoint was gone, in order."""
    found: list[Outage] = []
    current: dict | None = None
    broken_since_up: list[int] = []
    for signal in _signals(records, checks):
        if current is None:
            if signal.kind == UP:
                broken_since_up = []
            elif signal.kind == LOST:
                broken_since_up.append(signal.t_ns)
            else:
                current = {"stopped_ns": min([signal.t_ns, *broken_since_up]),
                           "refused": 0, "broken": len(broken_since_up), "health_down": 0,
                           "burst": 0}
                _count(current, signal)
            continue
        if signal.kind == UP:
            found.append(Outage(came_back_ns=signal.t_ns, **current))
            current, broken_since_up = None, []
        else:
            _count(current, signal)
    if current is not None:
        found.append(Outage(came_back_ns=None, **current))
    return found


def _count(outage: dict, signal: _Signal) -> None:
    if signal.what == "refused":
        outage["refused"] += 1
    elif signal.what == "broken":
        outage["broken"] += 1
    elif signal.what == "health":
        outage["health_down"] += 1
    elif signal.what == "burst":
        outage["burst"] = max(outage["burst"], signal.size)


def overload_signs(records: Sequence[RequestRecord], checks: Sequence[HealthCheck]) -> dict:
    """What an overloaded (not a dead) server shows: timeouts, 429, 5xx, a slow health path."""
    statuses = [r.http_status for r in records
                if r.error is not None and r.error.kind is ErrorKind.HTTP_STATUS]
    return {"timeouts": sum(1 for r in records
                            if r.error is not None and r.error.kind is ErrorKind.TIMEOUT),
            "http_429": sum(1 for s in statuses if s == 429),
            "http_5xx": sum(1 for s in statuses if s is not None and s >= 500),
            "health_slow": sum(1 for c in checks if c.answer is Answer.SLOW)}


def endpoint_health(records: Sequence[RequestRecord], checks: Sequence[HealthCheck],
                    origin_ns: int) -> dict:
    """results.json `endpoints[].health`: the state, when the server stopped answering and
    whether it came back (seconds from `origin_ns`, the run's first issue), and why."""
    found = outages(records, checks)
    signs = overload_signs(records, checks)
    if found:
        state = STOPPED if found[-1].came_back_ns is None else RESTARTED
    else:
        state = OVERLOADED if any(signs.values()) else ANSWERING

    def seconds(t_ns: int | None) -> float | None:
        return None if t_ns is None else round((t_ns - origin_ns) / 1e9, 3)

    listed = [{"stopped_s": seconds(o.stopped_ns), "came_back_s": seconds(o.came_back_ns),
               "evidence": _evidence(o)} for o in found]
    return {
        "state": state,
        "stopped_answering_s": listed[0]["stopped_s"] if listed else None,
        "came_back_s": listed[-1]["came_back_s"] if listed else None,
        "outages": listed,
        "overload_signs": signs,
        "health_checks": {answer.value: sum(1 for c in checks if c.answer is answer)
                          for answer in Answer},
        "summary": _summary(state, listed, signs),
    }


def _evidence(outage: Outage) -> str:
    parts = []
    if outage.burst:
        parts.append(f"{outage.burst} requests in flight broke at once")
    elif outage.broken:
        parts.append(_counted(outage.broken, "request broke", "requests broke")
                     + " mid-response")
    if outage.refused:
        parts.append(_counted(outage.refused, "connection", "connections") + " refused")
    if outage.health_down:
        parts.append(f"its health path did not answer "
                     f"{'once' if outage.health_down == 1 else f'{outage.health_down} times'}")
    return ", ".join(parts)


def _counted(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _summary(state: str, listed: list[dict], signs: dict) -> str:
    if state == ANSWERING:
        return "answered throughout"
    if state == OVERLOADED:
        shown = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in signs.items()
                          if count)
        return f"answered throughout, overloaded at times ({shown})"
    return f"stopped answering {_outage_words(listed)}"


def _outage_words(listed: list[dict]) -> str:
    """When and how an endpoint stopped answering, and whether it came back."""
    first, back = listed[0], listed[-1]["came_back_s"]
    again = f" ({len(listed)} outages)" if len(listed) > 1 else ""
    return (f"{first['stopped_s']:g} s into the run ({first['evidence']}){again}; "
            + (f"it answered again at {back:g} s" if back is not None
               else "it did not come back"))


def lost_endpoints(endpoints: Sequence[dict]) -> list[dict]:
    """The endpoints of a run's results.json that stopped answering during it."""
    return [e for e in endpoints if (e.get("health") or {}).get("state") in LOST_STATES]


def lost_reason(endpoints: Sequence[dict], during: str) -> str | None:
    """One line naming the servers that stopped answering during `during` (a probe, a run), or
    None when every one answered throughout. With several servers, that the deployment lost a
    replica while the others served."""
    lost = lost_endpoints(endpoints)
    if not lost:
        return None
    named = "; ".join(f"the server at {e['url']} stopped answering during {during}, "
                      f"{_outage_words(e['health']['outages'])}" for e in lost)
    others = len(endpoints) - len(lost)
    if others:
        return (f"the deployment lost {'a replica' if len(lost) == 1 else f'{len(lost)} replicas'}"
                f": {named}, while {others} other{'s' if others > 1 else ''} kept answering")
    return named
