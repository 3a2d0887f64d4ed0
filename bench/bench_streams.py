"""Holding many concurrent streams: the client's memory and file descriptors stay bounded.

Runs `client-sut run` (Offline, every sample issued at once) against the loopback emitter with
long, slow streams, so that all of them are open together, and samples the client process's RSS
and open file descriptors from /proc. Memory per stream is the slope between a small and a large
run, so the fixed cost (LoadGen, tokenizer, dataset) cancels out.

    python bench/bench_streams.py [--streams 10000] [--small 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "cnndm_validation_200.jsonl"
# Each stream: first token after 4 s, then 8 tokens 0.5 s apart: about 7.5 s open.
EMITTER_ARGS = ["--first-token-ms", "4000", "--gap-ms", "500", "--output-tokens", "8"]
SAMPLE_EVERY_S = 0.1


def proc_sample(pid: int) -> tuple[int, int] | None:
    """(RSS in KiB, open file descriptors) of a live process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS:"))
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return None


def peak_concurrency(requests_path: Path) -> int:
    edges = []
    for line in requests_path.read_text().splitlines():
        record = json.loads(line)
        edges += [(record["send_ns"], 1), (record["end_ns"], -1)]
    open_now = peak = 0
    for _, step in sorted(edges):
        open_now += step
        peak = max(peak, open_now)
    return peak


def run_once(url: str, tokenizer: str, streams: int, work: Path) -> dict:
    output = work / f"run-{streams}"
    command = [sys.executable, "-m", "client_sut", "run", "--endpoint", url, "--tokenizer",
               tokenizer, "--dataset", str(DATA), "--scenario", "Offline", "--duration", "0.1",
               "--min-query-count", str(streams), "--max-concurrency", str(streams),
               "--output-dir", str(output)]
    started = time.monotonic()
    client = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    peak_rss = peak_fds = 0
    while client.poll() is None:
        sample = proc_sample(client.pid)
        if sample:
            peak_rss, peak_fds = max(peak_rss, sample[0]), max(peak_fds, sample[1])
        time.sleep(SAMPLE_EVERY_S)
    results = json.loads((output / "results.json").read_text())
    return {"streams": streams, "seconds": round(time.monotonic() - started, 1),
            "peak_rss_mib": round(peak_rss / 1024, 1), "peak_fds": peak_fds,
            "peak_concurrent": peak_concurrency(output / "requests.jsonl"),
            "requests": results["client"]["requests"], "errors": results["client"]["errors"],
            "exit": client.returncode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=100)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from client_sut.servers.emitter import EmitterProcess
    from server.demo_model import build_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_tokenizer(work / "tokenizer")
        emitter = EmitterProcess(*EMITTER_ARGS)
        try:
            small = run_once(emitter.url, str(work / "tokenizer"), args.small, work)
            large = run_once(emitter.url, str(work / "tokenizer"), args.streams, work)
        finally:
            emitter.stop()
    for row in (small, large):
        print(json.dumps(row))
    extra_streams = large["peak_concurrent"] - small["peak_concurrent"]
    per_stream_kib = (large["peak_rss_mib"] - small["peak_rss_mib"]) * 1024 / max(1, extra_streams)
    print(f"{large['peak_concurrent']} streams open at once: client peak RSS "
          f"{large['peak_rss_mib']} MiB, {large['peak_fds']} file descriptors, "
          f"{per_stream_kib:.1f} KiB per extra stream; errors {large['errors']}")


if __name__ == "__main__":
    main()
