"""Progress while a run runs, from counters only: nothing on the request path.

Twice a second (`live`) or every 10 s (`plain`) a callback on the run's event loop reads the
bridge's counters and the requests completed since the last look (at most the record log's
newest ROLLING_REQUESTS: a bounded, sub-millisecond step), and the newest lines the scraper
appended, and hands a `ProgressSnapshot` on. A terminal gets the live view (drawn by another process, `live.py`);
anything else (CI, a pipe, a container log) a plain line, because a live display written to a
file shows only its last frame.

The rolling TTFT and TPOT p99 are LoadGen's view of each request (from its issue, and from the
first token's report) over the last ROLLING_REQUESTS completed requests, as the limits judge.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from client_sut.analysis.metrics import (
    NS_PER_MS,
    judged_tpot_ns,
    judged_ttft_ns,
    percentile,
)
from client_sut.measure.record_log import RECENT

LIVE_INTERVAL_S = 0.5
PLAIN_INTERVAL_S = 10.0
RATE_WINDOW_S = 5.0  # requests/s and tokens/s over about this long (plain: the last interval)
ROLLING_REQUESTS = RECENT


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    scenario: str
    elapsed_s: float
    min_duration_s: float
    issued: int
    completed: int
    errors: int
    requests_per_s: float
    tokens_per_s: float
    ttft_p99_ms: float | None
    tpot_p99_ms: float | None
    ttft_limit_ms: float | None
    tpot_limit_ms: float | None
    server_waiting: float | None  # summed over the endpoints that expose it
    kv_cache_usage: float | None  # the fullest endpoint's share
    # The client's own event loop since the last snapshot: how late a callback ran, p99.
    loop_lag_p99_ms: float | None = None

    @property
    def in_flight(self) -> int:
        return self.issued - self.completed

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.min_duration_s - self.elapsed_s)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> ProgressSnapshot:
        return cls(**json.loads(line))


def _figure(value: float | None, unit: str, limit: float | None = None, digits: int = 1) -> str:
    text = "-" if value is None else f"{value:,.{digits}f} {unit}"
    return text if limit is None else f"{text} (limit {limit:,.0f})"


def progress_line(s: ProgressSnapshot) -> str:
    """The plain line: every figure of the live view, on one line."""
    server = ""
    if s.server_waiting is not None or s.kv_cache_usage is not None:
        kv = "-" if s.kv_cache_usage is None else f"{s.kv_cache_usage * 100:.0f}%"
        waiting = "-" if s.server_waiting is None else f"{s.server_waiting:.0f}"
        server = f", server waiting {waiting}, KV cache {kv}"
    return (f"  {s.scenario} {s.elapsed_s:.0f} s ({s.remaining_s:.0f} s to min duration): "
            f"issued {s.issued}, done {s.completed}, in flight {s.in_flight}, "
            f"{s.requests_per_s:,.1f} req/s, {s.tokens_per_s:,.0f} tok/s, "
            f"TTFT p99 {_figure(s.ttft_p99_ms, 'ms', s.ttft_limit_ms)}, "
            f"TPOT p99 {_figure(s.tpot_p99_ms, 'ms', s.tpot_limit_ms, 2)}, "
            f"errors {s.errors}{server}, client loop lag p99 "
            f"{_figure(s.loop_lag_p99_ms, 'ms', digits=2)}")


class ServerTail:
    """The newest gauges per endpoint from server_metrics.jsonl, read as the scraper appends."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.latest: dict[str, dict[str, float]] = {}

    def read(self) -> None:
        try:
            with self._path.open("rb") as source:
                source.seek(self._offset)
                data = source.read()
        except OSError:
            return
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            scrape = json.loads(line)
            if scrape.get("source") == "server" and "gauges" in scrape:
                self.latest[scrape["endpoint"]] = scrape["gauges"]

    def figure(self, name: str, combine) -> float | None:
        values = [g[name] for g in self.latest.values() if name in g]
        return combine(values) if values else None


class ProgressSampler:
    """Looks at the counters every `interval_s` on the run's loop and hands on a snapshot."""

    def __init__(self, loop: asyncio.AbstractEventLoop, bridge, *, scenario: str,
                 min_duration_s: float, limits_ms: tuple[float | None, float | None],
                 interval_s: float, sink: Callable[[ProgressSnapshot], None],
                 server: ServerTail | None = None, loop_lags=None) -> None:
        """`loop_lags`: the run's loop lag probe's tally (its `count` and `recent` lags), added
        to as the run goes."""
        self._loop = loop
        self._bridge = bridge
        self._lags = loop_lags
        self._lags_seen = 0
        self._scenario = scenario
        self._min_duration_s = min_duration_s
        self._limits_ms = limits_ms
        self._interval_s = interval_s
        self._sink = sink
        self._server = server
        self._seen = 0
        self._ttft: deque[float] = deque(maxlen=ROLLING_REQUESTS)
        self._tpot: deque[float] = deque(maxlen=ROLLING_REQUESTS)
        self._history: deque[tuple[float, int, int]] = deque(
            maxlen=max(2, round(RATE_WINDOW_S / interval_s) + 1))
        self._started = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        self._history.append((self._started, 0, 0))
        self._handle = self._loop.call_later(self._interval_s, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        self._handle = self._loop.call_later(self._interval_s, self._tick)
        self._sink(self.snapshot())

    def snapshot(self) -> ProgressSnapshot:
        bridge = self._bridge
        log = bridge.log  # its newest records, and its running totals
        fresh = _since(log.recent, log.count, self._seen)
        self._seen = log.count
        for record in fresh:
            if not record.ok:
                continue
            ttft, tpot = judged_ttft_ns(record), judged_tpot_ns(record)
            if ttft is not None:
                self._ttft.append(ttft)
            if tpot is not None:
                self._tpot.append(tpot)
        lags: list[int] = []
        if self._lags is not None:
            lags = sorted(_since(self._lags.recent, self._lags.count, self._lags_seen))
            self._lags_seen = self._lags.count
        server = self._server
        if server is not None:
            server.read()
        now = time.monotonic()
        then, completed_then, tokens_then = self._history[0]
        span = max(now - then, 1e-9)
        snapshot = ProgressSnapshot(
            scenario=self._scenario, elapsed_s=now - self._started,
            min_duration_s=self._min_duration_s, issued=bridge.issued,
            completed=bridge.completed, errors=bridge.errors,
            requests_per_s=(bridge.completed - completed_then) / span,
            tokens_per_s=(log.ok_output_tokens - tokens_then) / span,
            ttft_p99_ms=_p99_ms(self._ttft), tpot_p99_ms=_p99_ms(self._tpot),
            ttft_limit_ms=self._limits_ms[0], tpot_limit_ms=self._limits_ms[1],
            server_waiting=server.figure("waiting", sum) if server else None,
            kv_cache_usage=server.figure("kv_cache_usage", max) if server else None,
            loop_lag_p99_ms=percentile(lags, 99) / NS_PER_MS if lags else None)
        self._history.append((now, bridge.completed, log.ok_output_tokens))
        return snapshot


def _since(recent: deque, count: int, seen: int) -> list:
    """What was added since `seen` of `count` in all, as far as `recent` (the newest) holds it."""
    fresh = min(count - seen, len(recent))
    return list(itertools.islice(recent, len(recent) - fresh, None))


def _p99_ms(values: deque[float]) -> float | None:
    return percentile(sorted(values), 99) / NS_PER_MS if values else None
