"""The embedded default: the whole benchmark on this machine, with a real vLLM server on CPU.

Builds the demo model and the demo dataset (written by the project itself), starts vLLM on
127.0.0.1, runs a short Offline run and an accuracy run through `client-sut run`, then asks the
question the tool is for with `client-sut sla` (the highest Server load within the SLA, with
short probes), then draws the trade-off with `client-sut sweep` (four short points: system
tokens/s against tokens/s per user, its Pareto front in report.html), prints one summary table,
the answer and the front, and stops the server. Each run is its
own process: LoadGen accepts one configuration per process.

Client and server share this machine, so they get separate cores: vLLM's CPU engine binds its
OpenMP threads to every core by default, and a client sharing a core with it waits for it
(measured on 2 cores: the client's issue lag p99 2.53 ms shared, 0.33 ms apart).

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

from client_sut.runs.summary import fmt_number
from client_sut.sla.command import answer_line
from server.demo_corpus import write_corpus
from server.demo_model import build
from server.launch import LaunchError, load_profile, start_servers


@dataclass(frozen=True, slots=True)
class DemoRun:
    name: str
    args: tuple[str, ...]


# Short runs sized for a 2-core machine.
DEMO_RUNS = (
    DemoRun("offline", ("--scenario", "Offline", "--duration", "2", "--min-query-count", "128")),
    DemoRun("accuracy", ("--scenario", "Offline", "--mode", "accuracy")),
)
# The search with short probes and a 60 s confirmation (a submission confirms for 600 s), to a
# 10% bracket: a few minutes here.
DEMO_SLA = ("--probe-duration", "10", "--confirm-duration", "60", "--tolerance", "0.1",
            "--max-probes", "8")
# Three concurrencies and Offline, 4 s each (the official points last 600 s or more), over 16
# of the samples: each point is a whole pass, and one request at a time serves 64 in 110 s here.
DEMO_SWEEP = ("--concurrency", "1,4,16", "--point-duration", "4", "--total-sample-count", "16")


@dataclass(frozen=True, slots=True)
class CorePlan:
    client: frozenset[int]
    server: frozenset[int]

    @property
    def shared(self) -> bool:
        return self.client == self.server


def plan_cores(available: set[int]) -> CorePlan:
    """The lowest core for the client, every other one for vLLM; one core is shared."""
    cores = frozenset(available)
    if len(cores) < 2:
        return CorePlan(cores, cores)
    client = frozenset({min(cores)})
    return CorePlan(client, cores - client)


def core_list(cores: frozenset[int]) -> str:
    return ",".join(str(core) for core in sorted(cores))


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


def sla_lines(path: Path, cores: CorePlan) -> list[str]:
    """The answer in one line, then what it rests on."""
    if not path.exists():
        return ["the SLA search wrote no sla.json: see the messages above"]
    sla = json.loads(path.read_text())
    lines = [answer_line(sla)]
    confirmation = sla["confirmation"]
    if confirmation:
        lines.append(f"  confirmation: {confirmation['result']} at {confirmation['target_qps']:g} "
                     f"QPS, TTFT p99 {fmt_number(confirmation['ttft_p99_ms'])} ms, TPOT p99 "
                     f"{fmt_number(confirmation['tpot_p99_ms'], 2)} ms, "
                     f"{confirmation['duration_s']:g} s (a submission confirms for 600 s)")
    check = sla["self_check"]
    if check:
        warnings = check["warnings"]
        lines.append(f"  client self-check: issue lag p99 {fmt_number(check['issue_lag_ms']['p99'], 2)}"
                     f" ms, event-loop lag p99 {fmt_number(check['event_loop_lag_ms']['p99'], 2)} ms: "
                     + ("; ".join(warnings) if warnings else "the client kept up"))
    lines.append(f"  {len(sla['probes'])} probes in {sla['elapsed_s']:g} s; client on core(s) "
                 f"{core_list(cores.client)}, vLLM on {core_list(cores.server)}"
                 + (" (shared: one core only)" if cores.shared else "") + f"; {path}")
    return lines


def run_demo(work_dir: Path, dataset: str | None) -> int:
    started = time.monotonic()
    model_dir = work_dir / "demo-model"
    _say(f"building the demo model in {model_dir} (skipped when present)")
    build(model_dir)
    if dataset is None:
        dataset = str(write_corpus(work_dir / "demo-data" / "demo_news.jsonl"))
    port = free_port()
    cores = plan_cores(os.sched_getaffinity(0))
    _say(f"starting vLLM on 127.0.0.1:{port} (CPU, about a minute) on cores "
         f"{core_list(cores.server)}; the client runs on {core_list(cores.client)}")
    server_started = time.monotonic()
    # The server inherits this process's cores, and vLLM binds its threads to the same ones.
    os.sched_setaffinity(0, cores.server)
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = core_list(cores.server)
    try:
        group = start_servers(load_profile("cpu-demo"), model=str(model_dir), port=port,
                              log_dir=work_dir / "logs")
    finally:
        os.sched_setaffinity(0, cores.client)  # and every client run inherits these
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
        sla_dir = work_dir / "results" / "sla"
        _say(f"the question: the highest Server load within the SLA (client-sut sla "
             f"{' '.join(DEMO_SLA)})")
        command = [sys.executable, "-m", "client_sut", "sla", "--endpoint", group.endpoints[0],
                   "--dataset", dataset, "--output-dir", str(sla_dir), *DEMO_SLA]
        sla_status = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                                    stdout=subprocess.DEVNULL).returncode
        failures += sla_status not in (0, 1)
        sweep_dir = work_dir / "results" / "sweep"
        _say(f"the trade-off: tokens/s against each user's speed (client-sut sweep "
             f"{' '.join(DEMO_SWEEP)})")
        command = [sys.executable, "-m", "client_sut", "sweep", "--endpoint",
                   group.endpoints[0], "--dataset", dataset, "--output-dir", str(sweep_dir),
                   *DEMO_SWEEP]
        sweep = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                               stdout=subprocess.PIPE, text=True)
        failures += sweep.returncode != 0
    finally:
        _say("stopping vLLM")
        group.stop()
    print()
    print(summary_table(rows))
    print()
    print("\n".join(sla_lines(sla_dir / "sla.json", cores)))
    print(f"\nthe trade-off (client-sut sweep; the curve in {sweep_dir / 'report.html'}):")
    print(sweep.stdout.rstrip())
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
    except KeyboardInterrupt:  # the server was stopped on the way out; each run wrote its own
        print("demo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
