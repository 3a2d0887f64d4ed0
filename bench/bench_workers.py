"""What worker processes cost and give: the same Server load with the streams on LoadGen's
process and over 1, 2, ... worker processes, in one run.

The load is calibrate's timing load (256 streams x 100 tokens/s: 50 ms to the first token, then
one token every 10 ms, each stream on its own timer, one event per write). For each client
set-up it prints what the hop to a worker adds (issue lag: LoadGen's issue to the request's
write; first token to LoadGen: the event's write by the emitter to LoadGen being told), the
timing error of the client's stamps against the emitter's recorded writes (TTFT, TPOT), the
event-loop lag, and per event loop its CPU per token and busy share, with the core plan.

On a machine with a core for LoadGen's process and one per worker, the workers are pinned and
each loop's busy share falls as N grows; with fewer cores (2 here, shared with the emitter)
nothing is pinned and only the overhead of the hop shows.

    python bench/bench_workers.py [--workers 0,1,2] [--seconds 20] [--streams 256]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client_sut.runs.calibrate import CalibrationPlan, measure_timing, write_inputs  # noqa: E402


def row(workers: int, timed: dict) -> dict:
    check = timed["self_check"]
    loops = check.get("workers") or [{
        "event_loop_busy_share": check["event_loop_busy_share"],
        "event_loop_cpu_us_per_token": round(check["event_loop_cpu_s"] * 1e6
                                             / max(1, check["streamed_tokens"]), 3)}]
    return {
        "workers": workers,
        "requests": timed["requests_matched"],
        "issue_lag_p99_ms": check["issue_lag_ms"]["p99"],
        "first_token_to_loadgen_p50_ms": timed["first_token_to_loadgen_ms"]["p50"],
        "first_token_to_loadgen_p99_ms": timed["first_token_to_loadgen_ms"]["p99"],
        "ttft_error_p99_ms": timed["ttft_error_ms"]["p99"],
        "tpot_abs_error_p99_ms": timed["tpot_abs_error_ms"]["p99"],
        "event_loop_lag_p99_ms": check["event_loop_lag_ms"]["p99"],
        "client_cpu_us_per_token": check["client_cpu_us_per_token"],
        "loops": [(loop["event_loop_busy_share"], loop["event_loop_cpu_us_per_token"])
                  for loop in loops],
        "core_plan": check["core_plan"],
        "loadgen_result": timed["loadgen_result"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="0,1,2", metavar="N,M,...")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--streams", type=int, default=256)
    args = parser.parse_args()
    plan = replace(CalibrationPlan(), timing_streams=args.streams,
                   timing_duration_s=args.seconds)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = write_inputs(work)
        for workers in map(int, args.workers.split(",")):
            timed = measure_timing(f"workers-{workers}", replace(plan, workers=workers),
                                   ["--gap-ms", str(plan.timing_gap_ms)], inputs, work)
            rows.append(row(workers, timed))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nServer at {plan.timing_qps:.1f} QPS, ~{plan.timing_streams} streams x "
          f"{1000 / plan.timing_gap_ms:g} tokens/s, {plan.timing_duration_s:g} s; ms at p99 "
          f"unless said")
    print(f"{'workers':>7} {'issue lag':>9} {'1st tok->LG p50/p99':>19} {'TTFT err':>8} "
          f"{'TPOT err':>8} {'loop lag':>8} {'CPU us/tok':>10}  loops (busy, us/token)")
    for r in rows:
        loops = ", ".join(f"{busy:.0%} {per_token:.1f}" for busy, per_token in r["loops"])
        print(f"{r['workers']:>7} {r['issue_lag_p99_ms']:>9.3f} "
              f"{r['first_token_to_loadgen_p50_ms']:>9.3f}/{r['first_token_to_loadgen_p99_ms']:<9.3f} "
              f"{r['ttft_error_p99_ms']:>8.3f} {r['tpot_abs_error_p99_ms']:>8.4f} "
              f"{r['event_loop_lag_p99_ms']:>8.3f} {r['client_cpu_us_per_token']:>10.2f}  {loops}")


if __name__ == "__main__":
    main()
