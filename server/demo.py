"""The embedded default: the whole benchmark on this machine, with a real vLLM server on CPU.

Builds the demo model and the demo dataset (written by the project itself), starts vLLM on
127.0.0.1, runs a short Offline run, a short Server run and an accuracy run through
`client-sut run`, prints one summary table and stops the server. Each run is its own process:
LoadGen accepts one configuration per process.

    python -m server.demo [--dataset PATH_OR_HF_SPEC] [--work-dir work]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from client_sut.summary import fmt_number
from server.demo_corpus import write_corpus
from server.demo_model import build
from server.launch import LaunchError, load_profile, start_servers


@dataclass(frozen=True, slots=True)
class DemoRun:
    name: str
    args: tuple[str, ...]


# Short runs sized for a 2-core machine: the Server run issues enough queries (500) for
# LoadGen's early stopping to be able to call it VALID at p99.
DEMO_RUNS = (
    DemoRun("offline", ("--scenario", "Offline", "--duration", "2", "--min-query-count", "128")),
    DemoRun("server", ("--scenario", "Server", "--target-qps", "6", "--duration", "30",
                       "--min-query-count", "500")),
    DemoRun("accuracy", ("--scenario", "Offline", "--mode", "accuracy")),
)


def _say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def free_port(start: int = 8000) -> int:
    for port in range(start, start + 100):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise LaunchError(f"no free port in {start}-{start + 99}")


def summary_table(rows: list[tuple[str, dict | None]]) -> str:
    header = (f"{'run':<10} {'scenario':<12} {'result':<8} {'tokens/s':>10} {'TTFT p99 ms':>12} "
              f"{'TPOT p99 ms':>12} {'errors':>7} {'ROUGE-1/2/L':>22}")
    lines = [header, "-" * len(header)]
    for name, results in rows:
        if results is None:
            lines.append(f"{name:<10} (no results.json: the run failed before measuring)")
            continue
        loadgen, client = results["loadgen"], results["client"]
        accuracy = results.get("accuracy")
        rouge = (f"{accuracy['rouge1']:.2f}/{accuracy['rouge2']:.2f}/{accuracy['rougeL']:.2f}"
                 if accuracy else "-")
        verdict = loadgen["result"] or ("accuracy" if results["mode"] == "accuracy" else "-")
        lines.append(
            f"{name:<10} {results['scenario']:<12} {verdict:<8} "
            f"{fmt_number(loadgen['tokens_per_second'] or client['output_tokens_per_second']):>10} "
            f"{fmt_number(loadgen['ttft_ms']['p99'] or client['ttft_ms']['p99']):>12} "
            f"{fmt_number(loadgen['tpot_ms']['p99'] or client['tpot_ms']['p99'], 2):>12} "
            f"{client['errors']:>7} {rouge:>22}")
    lines.append("TTFT/TPOT are LoadGen's where it reports them (Server); Offline runs show the "
                 "client's own.")
    return "\n".join(lines)


def run_demo(work_dir: Path, dataset: str | None) -> int:
    started = time.monotonic()
    model_dir = work_dir / "demo-model"
    _say(f"building the demo model in {model_dir} (skipped when present)")
    build(model_dir)
    if dataset is None:
        dataset = str(write_corpus(work_dir / "demo-data" / "demo_news.jsonl"))
    port = free_port()
    _say(f"starting vLLM on 127.0.0.1:{port} (CPU, about a minute)")
    server_started = time.monotonic()
    group = start_servers(load_profile("cpu-demo"), model=str(model_dir), port=port,
                          log_dir=work_dir / "logs")
    _say(f"vLLM healthy after {time.monotonic() - server_started:.1f} s")
    rows: list[tuple[str, dict | None]] = []
    failures = 0
    try:
        for run in DEMO_RUNS:
            output_dir = work_dir / "results" / run.name
            _say(f"run {run.name}: client-sut run {' '.join(run.args)}")
            command = [sys.executable, "-m", "client_sut", "run", "--endpoint", group.endpoints[0],
                       "--dataset", dataset, "--output-dir", str(output_dir), *run.args]
            status = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}).returncode
            results_path = output_dir / "results.json"
            results = json.loads(results_path.read_text()) if results_path.exists() else None
            rows.append((run.name, results))
            # Exit 1 is a finished run that is INVALID or fails accuracy: the table says which.
            failures += status not in (0, 1) or results is None or results["client"]["errors"] > 0
    finally:
        _say("stopping vLLM")
        group.stop()
    print()
    print(summary_table(rows))
    print(f"\nresults in {work_dir / 'results'}; total {time.monotonic() - started:.0f} s. "
          f"The demo model has random weights: its ROUGE is near zero by design.")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the embedded CPU demo end to end.")
    parser.add_argument("--work-dir", type=Path, default=Path("work"))
    parser.add_argument("--dataset", help="default: the demo news set this project writes")
    args = parser.parse_args(argv)
    try:
        return run_demo(args.work_dir.resolve(), args.dataset)
    except LaunchError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
