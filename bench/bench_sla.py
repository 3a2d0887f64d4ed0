"""How fast `client-sut sla` finds and proves its answer, against a server of known capacity.

The loopback emitter is given a server's capacity (at most K streams generate at once, the rest
wait in arrival order): capacity = K / (first-token delay + (tokens - 1) x gap). The benchmark
runs the search twice, from the start its three-point curve predicts and from a fixed
--start-qps (no prediction), and prints each answer, the answer over the capacity, every probe
and the time spent. Beside them, the same server is searched the way LoadGen's
FindPeakPerformance mode does it:
every probe a full run at the confirmation's size, doubling from the same start until a run is
INVALID, then bisecting to 0.1 QPS on LoadGen's VALID/INVALID alone, with no early stop and no
confirmation. It prints the times and their ratios. `sla`'s own defaults are a 30 s probe to a
600 s confirmation (1:20); `--confirm-duration 60` keeps that proportion to 3 s probes (about
18 minutes); the default 6 s gives a quick look, in which each run's start-up weighs more.

    python bench/bench_sla.py [--k 16] [--confirm-duration 6] [--probe-duration 3]
                              [--skip-fixed] [--skip-plain]
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
sys.path.insert(0, str(REPO))

from client_sut.servers.emitter import EmitterProcess  # noqa: E402
from server.demo_model import build_tokenizer  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cnndm_validation_200.jsonl"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
FIND_PEAK_RESOLUTION_QPS = 0.1  # LoadGen's FindPeakPerformance bisects to this
MAX_PLAIN_PROBES = 20


def deployment(url: str, tokenizer: Path) -> list[str]:
    return ["--endpoint", url, "--tokenizer", str(tokenizer), "--dataset", str(DATA)]


def run_sla(url: str, tokenizer: Path, args: argparse.Namespace, output: Path,
            start: list[str]) -> tuple[dict, float]:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "client_sut", "sla", *deployment(url, tokenizer),
                    "--ttft-limit-ms", str(args.ttft_limit_ms), "--probe-duration",
                    str(args.probe_duration), "--confirm-duration", str(args.confirm_duration),
                    *start, "--no-report", "--output-dir", str(output)], cwd=REPO, env=ENV,
                   stdout=subprocess.DEVNULL)
    return json.loads((output / "sla.json").read_text()), time.monotonic() - started


def print_search(title: str, sla: dict, seconds: float, capacity: float) -> None:
    answer, fail = sla["answer_qps"], sla["lowest_failing_qps"]
    print(f"\nclient-sut sla {title}: answer {answer} QPS (confirmed {sla['confirmed']}), "
          f"{(answer or 0) / capacity:.3f} of capacity, lowest failing {fail}"
          f"{f' ({fail / answer - 1:+.1%})' if answer and fail else ''}, {seconds:.0f} s")
    print(f"  start {sla['start']['qps']} QPS: {sla['start']['rule']}")
    print(f"  {'run':<16} {'QPS':>8} {'size':>12} {'queries':>8} {'verdict':>10} "
          f"{'TTFT p99':>9} {'wall s':>7}")
    for probe in sla["probes"] + sla["confirmation_attempts"]:
        print(f"  {probe['dir'].split('-')[0] + '-' + probe['dir'].split('-')[1]:<16} "
              f"{probe['target_qps']:>8g} {probe.get('size', 'confirmation'):>12} "
              f"{probe['requests']:>8} {probe['verdict']:>10} "
              f"{probe['ttft_p99_ms'] or 0:>9.1f} {probe['wall_s']:>7.1f}")


def plain_probe(url: str, tokenizer: Path, args: argparse.Namespace, work: Path,
                qps: float, number: int) -> bool:
    output = work / f"plain-{number:02d}"
    subprocess.run([sys.executable, "-m", "client_sut", "run", *deployment(url, tokenizer),
                    "--scenario", "Server", "--target-qps", f"{qps:.4g}", "--duration",
                    str(args.confirm_duration), "--min-query-count", "505", "--ttft-limit-ms",
                    str(args.ttft_limit_ms), "--no-report", "--output-dir", str(output)],
                   cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((output / "results.json").read_text())["loadgen"]["result"] == "VALID"


def run_plain(url: str, tokenizer: Path, args: argparse.Namespace,
              work: Path) -> tuple[float | None, list[tuple[float, bool]], float]:
    """Doubling, then bisection to 0.1 QPS, every probe at full size, judged by VALID alone."""
    started = time.monotonic()
    probes: list[tuple[float, bool]] = []
    low, high, qps = None, None, args.start_qps
    while len(probes) < MAX_PLAIN_PROBES:
        valid = plain_probe(url, tokenizer, args, work, qps, len(probes) + 1)
        probes.append((qps, valid))
        if valid:
            low = qps
        else:
            high = qps
        if high is None:
            qps = 2 * qps
        elif low is None:
            qps = qps / 2
        elif high - low <= FIND_PEAK_RESOLUTION_QPS:
            break
        else:
            qps = (low + high) / 2
    return low, probes, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16, help="streams generating at once")
    parser.add_argument("--first-token-ms", type=float, default=20.0)
    parser.add_argument("--gap-ms", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--ttft-limit-ms", type=float, default=200.0)
    parser.add_argument("--probe-duration", type=float, default=3.0)
    parser.add_argument("--confirm-duration", type=float, default=6.0)
    parser.add_argument("--start-qps", type=float, default=50.0)
    parser.add_argument("--skip-plain", action="store_true", help="only the sla search")
    parser.add_argument("--skip-fixed", action="store_true",
                        help="no search from --start-qps: the predicted and the plain ones only")
    args = parser.parse_args()
    capacity = args.k / ((args.first_token_ms + (args.tokens - 1) * args.gap_ms) / 1000)
    emitter = EmitterProcess("--max-running", str(args.k), "--first-token-ms",
                             str(args.first_token_ms), "--gap-ms", str(args.gap_ms),
                             "--output-tokens", str(args.tokens))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sla-") as folder:
            work = Path(folder)
            tokenizer = work / "tokenizer"
            build_tokenizer(tokenizer)
            print(f"server: {args.k} streams at once, {args.first_token_ms:g} ms to the first "
                  f"token, {args.tokens} tokens {args.gap_ms:g} ms apart: capacity "
                  f"{capacity:.1f} QPS; limits TTFT p99 {args.ttft_limit_ms:g} ms, TPOT p99 "
                  f"100 ms; {os.cpu_count()} cores")
            sla, sla_s = run_sla(emitter.url, tokenizer, args, work / "predicted", [])
            print_search("from its predicted start", sla, sla_s, capacity)
            fixed_s = None
            if not args.skip_fixed:
                fixed, fixed_s = run_sla(emitter.url, tokenizer, args, work / "fixed",
                                         ["--start-qps", str(args.start_qps)])
                print_search(f"from --start-qps {args.start_qps:g}", fixed, fixed_s, capacity)
            if args.skip_plain:
                return 0
            plain, probes, plain_s = run_plain(emitter.url, tokenizer, args, work)
            print(f"\nplain doubling-then-bisect (LoadGen FindPeakPerformance's way): answer "
                  f"{plain} QPS, {(plain or 0) / capacity:.3f} of capacity, {len(probes)} full "
                  f"runs, {plain_s:.0f} s, unconfirmed")
            print("  " + ", ".join(f"{qps:.4g}{'+' if ok else '-'}" for qps, ok in probes))
            fixed_time = "" if fixed_s is None else f", sla from a fixed start {fixed_s:.0f} s"
            print(f"\ntime: sla predicted {sla_s:.0f} s{fixed_time}, plain {plain_s:.0f} s: the "
                  f"plain search takes {plain_s / sla_s:.2f}x as long as the predicted one "
                  f"({sla_s / plain_s:.2f} of its time)")
    finally:
        emitter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
