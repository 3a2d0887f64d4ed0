"""An hour-long Server run: does the client's memory or timing drift?

A Server run at 80% of the loopback emitter's known capacity for 60 minutes (not in make test).
The emitter is a server of 256 sequences at once, 50 ms to the first token, then 127 tokens 50 ms
apart: 6.4 s a request, so 40 requests/s at most; the run asks for 32 (about 205 streams open,
4,100 tokens/s). At that share of 256 slots a request waits for one about 1 time in 1,400, so the
TTFT p99 is the server's first-token time plus the client's own delays: a drift in it is the
client's.

Sampled per minute: the client process's RSS (/proc, every second; the minute's last sample), its
event loop's lag (the run's plain progress line says its p99 every 10 s; the minute's highest),
and from requests.jsonl the TTFT p99 (client TTFT, first token minus send) of the requests sent
in the minute, and their errors. The verdicts: RSS grows under 5% from minute 5 to the end, the
TTFT p99 of the last 10 minutes is within 1 ms of the first 10's, no errors. The run's own end
(the analysis reads requests.jsonl back) is reported apart: its peak RSS and how long it took.

    python bench/bench_soak.py [--minutes 60] [--share 0.8] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_streams import DATA, proc_sample  # noqa: E402

from client_sut.analysis.metrics import percentile, ttft_ns  # noqa: E402
from client_sut.records import RequestRecord  # noqa: E402
from client_sut.requests_file import read_requests  # noqa: E402

SLOTS, FIRST_TOKEN_MS, GAP_MS, TOKENS = 256, 50, 50, 128
CAPACITY_QPS = SLOTS / ((FIRST_TOKEN_MS + (TOKENS - 1) * GAP_MS) / 1000)
EMITTER_ARGS = ("--max-running", str(SLOTS), "--first-token-ms", str(FIRST_TOKEN_MS),
                "--gap-ms", str(GAP_MS), "--output-tokens", str(TOKENS))
RSS_EVERY_S = 1.0
LAG = re.compile(r"client loop lag p99 ([\d.,]+) ms")
STEADY_FROM_MINUTE = 5
WINDOW_MINUTES = 10


# Times are perf_counter_ns, CLOCK_MONOTONIC on Linux: the run's requests.jsonl uses the same.

def sample_rss(pid: int, samples: list[tuple[int, int]]) -> None:
    """(time, RSS KiB) every RSS_EVERY_S until the process is gone."""
    while (sample := proc_sample(pid)) is not None:
        samples.append((time.perf_counter_ns(), sample[0]))
        time.sleep(RSS_EVERY_S)


def read_lags(stream, lags: list[tuple[int, float]]) -> None:
    for line in stream:
        sys.stderr.write(line)
        found = LAG.search(line)
        if found:
            lags.append((time.perf_counter_ns(), float(found.group(1).replace(",", ""))))


def ttft_p99_ms(records: list[RequestRecord]) -> float | None:
    ttfts = sorted(t for t in map(ttft_ns, (r for r in records if r.ok)) if t is not None)
    return round(percentile(ttfts, 99) / 1e6, 3) if ttfts else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--share", type=float, default=0.8, help="of the emitter's capacity")
    parser.add_argument("--keep", type=Path, help="write the run's folder here")
    args = parser.parse_args()
    from client_sut.servers.emitter import EmitterProcess
    from server.demo_model import build_tokenizer

    rate = round(args.share * CAPACITY_QPS, 3)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_tokenizer(work / "tokenizer")
        output = args.keep or work / "run"
        emitter = EmitterProcess(*EMITTER_ARGS)
        command = [sys.executable, "-m", "client_sut", "run", "--endpoint", emitter.url,
                   "--tokenizer", str(work / "tokenizer"), "--dataset", str(DATA),
                   "--scenario", "Server", "--target-qps", str(rate),
                   "--duration", str(args.minutes * 60), "--max-concurrency", "1024",
                   "--progress", "plain", "--no-report", "--output-dir", str(output)]
        print(f"emitter capacity {CAPACITY_QPS:g} requests/s; Server at {rate:g} for "
              f"{args.minutes:g} minutes", flush=True)
        try:
            client = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            rss: list[tuple[int, int]] = []
            lags: list[tuple[int, float]] = []
            threads = [threading.Thread(target=sample_rss, args=(client.pid, rss)),
                       threading.Thread(target=read_lags, args=(client.stderr, lags))]
            for thread in threads:
                thread.start()
            stdout = client.stdout.read()
            client.wait()
            exited_ns = time.perf_counter_ns()
            for thread in threads:
                thread.join()
        finally:
            emitter.stop()
        print(stdout)
        report(output, rss, lags, exited_ns, client.returncode)


def report(output: Path, rss: list[tuple[int, int]], lags: list[tuple[int, float]],
           exited_ns: int, status: int) -> None:
    results = json.loads((output / "results.json").read_text())
    requests = read_requests(output / "requests.jsonl")
    first_send = min(r.send_ns for r in requests)
    last_end = max(r.end_ns for r in requests)

    def minute(t_ns: int) -> int:
        return int((t_ns - first_send) // 60_000_000_000)

    minutes = minute(last_end) + 1
    rows = []
    for m in range(minutes):
        in_minute = [kib for t, kib in rss if minute(t) == m and t <= last_end]
        lag = [ms for t, ms in lags if minute(t) == m]
        sent = [r for r in requests if minute(r.send_ns) == m]
        rows.append({"minute": m + 1, "rss_mib": round(in_minute[-1] / 1024, 1)
                     if in_minute else None, "loop_lag_p99_ms": max(lag) if lag else None,
                     "ttft_p99_ms": ttft_p99_ms(sent), "requests": len(sent),
                     "errors": sum(1 for r in sent if not r.ok)})
    print(f"{'min':>4} {'RSS MiB':>8} {'loop lag p99 ms':>16} {'TTFT p99 ms':>12} "
          f"{'requests':>9} {'errors':>7}")
    for row in rows:
        print(f"{row['minute']:>4} {row['rss_mib'] or '-':>8} {row['loop_lag_p99_ms'] or '-':>16} "
              f"{row['ttft_p99_ms'] or '-':>12} {row['requests']:>9} {row['errors']:>7}")
    steady = [row["rss_mib"] for row in rows[STEADY_FROM_MINUTE - 1:] if row["rss_mib"]]
    growth = (steady[-1] - steady[0]) / steady[0] if steady else None
    window = WINDOW_MINUTES * 60e9
    last_send = max(r.send_ns for r in requests)
    first = ttft_p99_ms([r for r in requests if r.send_ns - first_send < window])
    last = ttft_p99_ms([r for r in requests if last_send - r.send_ns < window])
    end = [kib for t, kib in rss if t > last_end]
    summary = {
        "exit_status": status, "requests": len(requests),
        "errors": results["client"]["errors"], "loadgen": results["loadgen"]["result"],
        "rss_growth_from_minute_5": None if growth is None else round(growth, 4),
        "ttft_p99_first_10_min_ms": first, "ttft_p99_last_10_min_ms": last,
        "ttft_p99_drift_ms": None if first is None or last is None else round(last - first, 3),
        "analysis_at_the_end": {"peak_rss_mib": round(max(end) / 1024, 1) if end else None,
                                "seconds": round((exited_ns - last_end) / 1e9, 1)},
        "client_cpu_us_per_token": results["self_check"]["client_cpu_us_per_token"],
        "event_loop_lag_p99_ms_whole_run": results["self_check"]["event_loop_lag_ms"]["p99"],
    }
    print(json.dumps(summary, indent=2))
    verdicts = {"RSS growth < 5% after minute 5": growth is not None and growth < 0.05,
                "TTFT p99 last 10 min within 1 ms of the first 10": summary["ttft_p99_drift_ms"]
                is not None and abs(summary["ttft_p99_drift_ms"]) <= 1.0,
                "no errors": summary["errors"] == 0}
    for name, ok in verdicts.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")


if __name__ == "__main__":
    main()
