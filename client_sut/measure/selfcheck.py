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
import json
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from client_sut.analysis.headroom import LAG_LIMIT_MS
from client_sut.analysis.metrics import (
    connect_ns,
    first_token_ns,
    issue_lag_ns,
    summarize_ms,
)
from client_sut.errors import UsageError
from client_sut.records import RequestRecord

PROBE_INTERVAL_S = 0.005
SLOW_CONNECT_MS = 100.0
LOOP_BUSY_LIMIT = 0.8  # the loop thread's share of one core past which it is near saturation
CAPACITY_SAFE_SHARE = 0.5  # of the calibrated tokens/s: beyond it, timing error grows


class LoopLagProbe:
    """Queues a callback every PROBE_INTERVAL_S and records how long it waited to run."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.lags_ns = array("q")
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
        self.lags_ns.append(time.perf_counter_ns() - queued_ns)


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
    loop_lags_ns: array
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
            "event_loop_lag_ms": summarize_ms(self.loop_lags_ns),
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


def self_check(records: Sequence[RequestRecord], loop_lags_ns: Sequence[int], start: CpuSample,
               end: CpuSample, calibration: Calibration | None = None, *,
               queued_by_design: bool = False, workers: Sequence[WorkerStats] = ()) -> dict:
    """`queued_by_design`: LoadGen hands every sample over at once (Offline), so the wait for a
    stream slot is in the issue lag by design and is not the client falling behind.
    `workers`: the streams ran in these worker processes; then the event-loop figures are theirs
    (lag of all, CPU summed, the busiest one's share), `loop_lags_ns` is the LoadGen process's
    own loop, and the client's CPU counts every process."""
    wall_s, process_s, loop_s = _seconds(start, end)
    busy = _share(loop_s, wall_s)
    stream_lags = loop_lags_ns
    if workers:
        stream_lags = [lag for worker in workers for lag in worker.loop_lags_ns]
        spent = [_seconds(worker.start, worker.end) for worker in workers]
        process_s += sum(process for _, process, _ in spent)
        loop_s = sum(loop for _, _, loop in spent)
        busy = max(_share(loop, wall) or 0.0 for wall, _, loop in spent)
    tokens = sum(r.streamed_tokens for r in records)
    gaps = [g for g in map(loadgen_ttft_gap_ns, records) if g is not None]
    check = {
        "event_loop_lag_ms": summarize_ms(stream_lags),
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
        check["loadgen_process_loop_lag_ms"] = summarize_ms(loop_lags_ns)
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
