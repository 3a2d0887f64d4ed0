"""The client watching itself: is it fast enough for the load it is driving?

Measured in every run and written to results.json under `self_check`:
- event-loop lag: every few milliseconds a probe callback is queued on the loop; the time it
  waits before it runs is how late anything the loop has to do (a read, an issue) gets handled;
- CPU: the whole process's CPU seconds (LoadGen's thread included) and the event-loop thread's
  alone, over the LoadGen run; per streamed token, and as the loop thread's share of one core
  (with worker processes: every process's CPU, and each worker's loop, under `workers`);
- the difference between the TTFT LoadGen is told and the client's own (issue lag, connection
  set-up and the time from the first token's arrival to its report), per request, and that
  last part on its own: where the kernel stamps the first token's arrival, it is the wait of
  the read in a busy event loop too, which LoadGen's TTFT includes and the client's does not.
Plain warnings say when one of them means the client, not the server, may have shaped the
figures.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import operator
import time
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from client_sut.analysis.headroom import LAG_LIMIT_MS
from client_sut.analysis.metrics import (
    connect_ns,
    first_token_ns,
    issue_lag_ns,
    summarize_ms,
    summarize_sorted_ms,
)
from client_sut.errors import UsageError
from client_sut.records import RequestRecord

PROBE_INTERVAL_S = 0.005
HISTOGRAM_LIMIT_US = 100_000  # lags to 100 ms counted per microsecond (400 KB); longer ones kept
RECENT_LAGS = 4_000  # 20 s of them: more than the plain progress's 10 s between lines
SLOW_CONNECT_MS = 100.0
LOOP_BUSY_LIMIT = 0.8  # the loop thread's share of one core past which it is near saturation
CAPACITY_SAFE_SHARE = 0.5  # of the calibrated tokens/s: beyond it, timing error grows


class LagHistogram:
    """Every lag a probe measured, in memory that does not grow with the run (200 lags a second
    held one by one grew an hour's run by 5.6 MiB): a count per microsecond up to
    HISTOGRAM_LIMIT_US, the rarer longer lags exactly, their exact sum and maximum, and the
    newest RECENT_LAGS as they came (for the live progress). Its percentiles are the exact ones
    of the values to the microsecond (each taken as its microsecond's start)."""

    def __init__(self) -> None:
        self.counts = array("I", bytes(4 * HISTOGRAM_LIMIT_US))
        self.longer = array("q")
        self.count = 0
        self.sum_ns = 0
        self.max_ns = 0
        self.recent: deque[int] = deque(maxlen=RECENT_LAGS)

    def __getstate__(self) -> dict:
        """Sent from a worker process: the counts that are not zero (a few hundred, not 100,000)."""
        return {"counts": {i: n for i, n in enumerate(self.counts) if n},
                "longer": self.longer, "count": self.count, "sum_ns": self.sum_ns,
                "max_ns": self.max_ns}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
        for micros, n in state["counts"].items():
            self.counts[micros] = n
        self.longer, self.count = state["longer"], state["count"]
        self.sum_ns, self.max_ns = state["sum_ns"], state["max_ns"]

    @classmethod
    def of(cls, lags_ns: Iterable[int]) -> LagHistogram:
        histogram = cls()
        for lag in lags_ns:
            histogram.add(lag)
        return histogram

    def add(self, lag_ns: int) -> None:
        micros = lag_ns // 1000
        if micros < HISTOGRAM_LIMIT_US:
            self.counts[micros] += 1
        else:
            self.longer.append(lag_ns)
        self.count += 1
        self.sum_ns += lag_ns
        self.max_ns = max(self.max_ns, lag_ns)
        self.recent.append(lag_ns)

    def merged(self, others: Iterable[LagHistogram]) -> LagHistogram:
        total = LagHistogram()
        for one in (self, *others):
            total.counts = array("I", map(operator.add, total.counts, one.counts))
            total.longer.extend(one.longer)
            total.count += one.count
            total.sum_ns += one.sum_ns
            total.max_ns = max(total.max_ns, one.max_ns)
        return total

    def summary_ms(self) -> dict[str, float | None]:
        """As analysis.metrics.summarize_ms gives it for the values themselves."""
        ordered = _SortedLags(list(itertools.accumulate(self.counts)), sorted(self.longer))
        return summarize_sorted_ms(ordered, self.sum_ns / self.count if self.count else None,
                                   self.max_ns)


class _SortedLags(Sequence):
    """A histogram's values in order, as analysis.metrics.percentile reads them (by rank)."""

    def __init__(self, cumulative: list[int], longer: list[int]) -> None:
        self._cumulative, self._longer = cumulative, longer

    def __len__(self) -> int:
        return self._cumulative[-1] + len(self._longer)

    def __getitem__(self, rank: int) -> int:
        if rank >= self._cumulative[-1]:
            return self._longer[rank - self._cumulative[-1]]
        return bisect.bisect_right(self._cumulative, rank) * 1000  # its microsecond's start


class LoopLagProbe:
    """Queues a callback every PROBE_INTERVAL_S and records how long it waited to run."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.lags = LagHistogram()
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._handle = self._loop.call_later(PROBE_INTERVAL_S, self._queue)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _queue(self) -> None:
        self._handle = self._loop.call_later(PROBE_INTERVAL_S, self._queue)
        self._loop.call_soon(self._ran, time.perf_counter_ns())

    def _ran(self, queued_ns: int) -> None:
        self.lags.add(time.perf_counter_ns() - queued_ns)


@dataclass(frozen=True, slots=True)
class CpuSample:
    wall_ns: int
    process_ns: int  # every thread of the client process
    loop_thread_ns: int  # the thread that runs the event loop (take it on that thread)

    @classmethod
    def now(cls) -> CpuSample:
        return cls(time.perf_counter_ns(), time.process_time_ns(), time.thread_time_ns())


def _seconds(start: CpuSample, end: CpuSample) -> tuple[float, float, float]:
    """Wall, process CPU and loop-thread CPU seconds between two samples."""
    return ((end.wall_ns - start.wall_ns) / 1e9, (end.process_ns - start.process_ns) / 1e9,
            (end.loop_thread_ns - start.loop_thread_ns) / 1e9)


def _share(part_s: float, wall_s: float) -> float | None:
    return part_s / wall_s if wall_s > 0 else None


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """What a worker process measured of itself, from its ready message to its end."""

    index: int
    cores: tuple[int, ...]
    loop_lags: LagHistogram
    start: CpuSample
    end: CpuSample
    streamed_tokens: int

    def summary(self) -> dict:
        wall_s, _, loop_s = _seconds(self.start, self.end)
        tokens = self.streamed_tokens
        busy = _share(loop_s, wall_s)
        return {
            "worker": self.index,
            "cores": list(self.cores) or None,
            "streamed_tokens": tokens,
            "event_loop_cpu_s": round(loop_s, 3),
            "event_loop_busy_share": round(busy, 3) if busy is not None else None,
            "event_loop_cpu_us_per_token": round(loop_s * 1e6 / tokens, 3) if tokens else None,
            "event_loop_lag_ms": self.loop_lags.summary_ms(),
        }


@dataclass(frozen=True, slots=True)
class Calibration:
    """What `client-sut calibrate` measured on this machine (calibrate.json)."""

    max_tokens_per_second: float
    source: str
    one_core_tokens_per_second: float | None = None  # one core's worth, from CPU per token


def load_calibration(path: Path) -> Calibration:
    try:
        capacity = json.loads(path.read_text())["capacity"]
        one_core = capacity.get("tokens", {}).get("one_core_tokens_per_second")
        return Calibration(float(capacity["max_tokens_per_second"]), str(path),
                           float(one_core) if one_core else None)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--calibration {path} is not a calibrate.json written by "
                         f"`client-sut calibrate` ({type(exc).__name__}: {exc})") from None


def loadgen_ttft_gap_ns(record: RequestRecord) -> int | None:
    """How much later than the client's TTFT the first token reached LoadGen, counted from
    LoadGen's issue: the issue lag, any connection set-up, and the time from the token's
    arrival to its report."""
    report_lag = report_lag_ns(record)
    return None if report_lag is None else report_lag + record.send_ns - record.issue_ns


def report_lag_ns(record: RequestRecord) -> int | None:
    """From the first token's arrival (its stamp) to LoadGen being told of it."""
    first = first_token_ns(record)
    if first is None or record.first_reported_ns is None:
        return None
    return record.first_reported_ns - first


def self_check(records: Sequence[RequestRecord], loop_lags: LagHistogram, start: CpuSample,
               end: CpuSample, calibration: Calibration | None = None, *,
               queued_by_design: bool = False, workers: Sequence[WorkerStats] = ()) -> dict:
    """`queued_by_design`: LoadGen hands every sample over at once (Offline), so the wait for a
    stream slot is in the issue lag by design and is not the client falling behind.
    `workers`: the streams ran in these worker processes; then the event-loop figures are theirs
    (lag of all, CPU summed, the busiest one's share), `loop_lags` is the LoadGen process's
    own loop, and the client's CPU counts every process."""
    wall_s, process_s, loop_s = _seconds(start, end)
    busy = _share(loop_s, wall_s)
    stream_lags = loop_lags
    if workers:
        stream_lags = workers[0].loop_lags.merged(w.loop_lags for w in workers[1:])
        spent = [_seconds(worker.start, worker.end) for worker in workers]
        process_s += sum(process for _, process, _ in spent)
        loop_s = sum(loop for _, _, loop in spent)
        busy = max(_share(loop, wall) or 0.0 for wall, _, loop in spent)
    tokens = sum(r.streamed_tokens for r in records)
    gaps = [g for g in map(loadgen_ttft_gap_ns, records) if g is not None]
    check = {
        "event_loop_lag_ms": stream_lags.summary_ms(),
        "issue_lag_ms": summarize_ms(issue_lag_ns(r) for r in records),
        "connect_ms": summarize_ms(connect_ns(r) for r in records),
        "loadgen_minus_client_ttft_ms": summarize_ms(gaps),
        "first_token_report_lag_ms": summarize_ms(
            lag for lag in map(report_lag_ns, records) if lag is not None),
        "client_cpu_s": round(process_s, 3),
        "event_loop_cpu_s": round(loop_s, 3),
        "event_loop_busy_share": round(busy, 3) if busy is not None else None,
        "client_cpu_us_per_token": round(process_s * 1e6 / tokens, 3) if tokens else None,
        "streamed_tokens": tokens,
        "streamed_tokens_per_second": round(tokens / wall_s, 1) if wall_s > 0 else None,
    }
    if workers:
        check["loadgen_process_loop_lag_ms"] = loop_lags.summary_ms()
        check["workers"] = [worker.summary() for worker in workers]
    if calibration is not None and check["streamed_tokens_per_second"] is not None:
        check["calibration_file"] = calibration.source
        check["calibrated_max_tokens_per_second"] = calibration.max_tokens_per_second
        check["share_of_calibrated_capacity"] = round(
            check["streamed_tokens_per_second"] / calibration.max_tokens_per_second, 3)
    check["warnings"] = _warnings(check, queued_by_design)
    return check


def _warnings(check: dict, queued_by_design: bool) -> list[str]:
    warnings = []
    in_both = "the client's own delay is in the latencies it reports"
    lags = [("event_loop_lag_ms", "event-loop lag", in_both),
            ("first_token_report_lag_ms", "first-token report lag (a first token's arrival to "
             "LoadGen being told of it)", "LoadGen's TTFT includes this delay of the client's")]
    if not queued_by_design:
        lags.insert(0, ("issue_lag_ms", "issue lag (LoadGen's issue to the request written)",
                        in_both))
    for key, what, meaning in lags:
        p99 = check[key]["p99"]
        if p99 is not None and p99 > LAG_LIMIT_MS:
            warnings.append(f"client {what} p99 is {p99:.2f} ms, above {LAG_LIMIT_MS:g} ms: "
                            f"{meaning}")
    connect = check["connect_ms"]["max"]
    if connect is not None and connect > SLOW_CONNECT_MS:
        warnings.append(f"opening a connection took up to {connect:,.0f} ms: the server was slow "
                        f"to accept, and LoadGen's TTFT includes that wait (the client's own "
                        f"TTFT counts from the request's write)")
    busy = check["event_loop_busy_share"]
    if busy is not None and busy > LOOP_BUSY_LIMIT:
        warnings.append(f"the client's event loop was busy {busy:.0%} of the run: it is near "
                        f"its capacity, so its timing may lag; spread the streams over more "
                        f"worker processes (--workers) or use fewer streams per client")
    share = check.get("share_of_calibrated_capacity")
    if share is not None and share > CAPACITY_SAFE_SHARE:
        warnings.append(f"the run streamed {share:.0%} of this machine's calibrated client "
                        f"capacity ({check['calibrated_max_tokens_per_second']:,.0f} tokens/s), "
                        f"above the {CAPACITY_SAFE_SHARE:.0%} that keeps timing exact")
    return warnings
