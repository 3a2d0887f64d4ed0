"""`client-sut calibrate`: how much this machine's client can drive, and how exactly it times.

It starts the loopback emitter (its own process, as a real server is) and drives it through the
real client and LoadGen, one `client-sut run` process per measurement. The emitter streams as
vLLM does (`--engine-step-ms`): every engine step, each running stream's next event is a write
of its own, so the client pays one read per token, as it does against a busy vLLM.
1. token capacity: engine steps back to back, 128 tokens one per event, many streams at once
   (Offline);
2. the same with each whole response in one write (the emitter's zero-delay timer mode): what
   the client takes when a read carries many events, which no busy vLLM sends; not the headline;
3. request capacity: engine steps back to back, 2-token answers (LoadGen's minimum for TPOT);
4. timing error at a stated load (Server: 256 streams x 100 tokens/s by default): every client
   stamp is compared with the time the emitter recorded writing that event, request by request
   (matched by the response id the emitter gives each response). At 10 ms a token each event
   is its own write either way; the headline has each stream on its own timer, so the writes
   are spread over the step, and `timing_engine_steps` repeats it with a 10 ms engine step,
   whose writes come in one burst per step, as vLLM's do. The emitter shares this machine's
   cores: on a small machine a burst's writes take the client's CPU, and that second figure
   then shows the co-located emitter as much as the client.

A token-capacity figure is what the client sustained against this emitter; when the client's
event loop was not saturated the emitter was the limit, and the CPU-derived figure (one core
divided by the client's CPU per token) says what the client alone would take.
Writes calibrate.json and prints a short table.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from client_sut.analysis.metrics import summarize_ms
from client_sut.errors import UsageError
from client_sut.servers.emitter import EmitterProcess

Progress = Callable[[str], None]
PROMPT_TOKENS = 16
DATASET_SAMPLES = 512
RUN_TIMEOUT_S = 600


@dataclass(frozen=True, slots=True)
class CalibrationPlan:
    """What to measure. The defaults are the issue's stated load; `quick` is a smoke test."""

    capacity_requests: int = 4000
    capacity_streams: int = 256
    output_tokens: int = 128
    short_requests: int = 8000
    timing_streams: int = 256
    timing_first_token_ms: float = 50.0
    timing_gap_ms: float = 10.0  # each stream's gap between tokens: its timer, or the step
    timing_duration_s: float = 20.0
    workers: int = 0  # the client's worker processes (run --workers)

    @classmethod
    def quick(cls) -> CalibrationPlan:
        return cls(capacity_requests=200, capacity_streams=32, output_tokens=32,
                   short_requests=200, timing_streams=16, timing_duration_s=2.0)

    @property
    def timing_qps(self) -> float:
        """The Server arrival rate that keeps `timing_streams` streams open on average."""
        stream_s = (self.timing_first_token_ms + (self.output_tokens - 1) * self.timing_gap_ms) / 1e3
        return self.timing_streams / stream_s


# --- pure: truth against measurement --------------------------------------------------------------

def timing_errors(requests: Sequence[dict], emitter_log: Sequence[dict]) -> dict:
    """Each client stamp minus the emitter's recorded write of the same event, per request.

    `requests`: requests.jsonl lines; `emitter_log`: the emitter's /emitter/log. Events are matched
    by response id and position (one token per event). TTFT's error is the first token's stamp
    error (both TTFTs start at the same send); TPOT's and ITL's are the differences of the
    client's figures and the emitter's own.
    """
    truth = {entry["response_id"]: entry["write_ns"] for entry in emitter_log}
    ttft, tpot, itl, reported, matched = [], [], [], [], 0
    for request in requests:
        writes = truth.get(request.get("response_id"))
        if request["error"] is not None or not writes:
            continue
        stamps = [t for t, n in zip(request["event_ns"], request["event_tokens"]) if n > 0]
        if len(stamps) != len(writes):
            continue
        matched += 1
        ttft.append(stamps[0] - writes[0])
        if request.get("first_reported_ns") is not None:
            reported.append(request["first_reported_ns"] - writes[0])
        if len(stamps) > 1:
            n = len(stamps) - 1
            tpot.append((stamps[-1] - stamps[0]) / n - (writes[-1] - writes[0]) / n)
            itl.extend((b - a) - (d - c) for a, b, c, d in
                       zip(stamps, stamps[1:], writes, writes[1:]))
    return {
        "requests_matched": matched,
        "ttft_error_ms": summarize_ms(ttft),
        "tpot_error_ms": summarize_ms(tpot),
        "tpot_abs_error_ms": summarize_ms(abs(e) for e in tpot),
        "itl_error_ms": summarize_ms(itl),
        "itl_abs_error_ms": summarize_ms(abs(e) for e in itl),
        "first_token_to_loadgen_ms": summarize_ms(reported),
    }


def capacity_summary(results: dict) -> dict:
    check, client = results["self_check"], results["client"]
    cpu_per_token = check["client_cpu_us_per_token"]
    return {
        "tokens_per_second": client["output_tokens_per_second"],
        "requests_per_second": client["requests_per_second"],
        "client_cpu_us_per_token": cpu_per_token,
        "one_core_tokens_per_second": round(1e6 / cpu_per_token) if cpu_per_token else None,
        "event_loop_busy_share": check["event_loop_busy_share"],
        "errors": client["errors"],
        "loadgen_result": results["loadgen"]["result"],
    }


# --- I/O: the emitter, the runs, the files --------------------------------------------------------

def write_inputs(folder: Path) -> tuple[Path, Path]:
    """A tiny word-level tokenizer and a dataset in MLCommons' form with short prompt ids:
    the client needs both, and calibration must not depend on the user's model or data."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2} | {f"t{i}": i + 3 for i in range(4000)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer_dir = folder / "tokenizer"
    PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(tokenizer_dir)
    rows = [{"input": f"calibration sample {i}",
             "tok_input": [3 + (i * 31 + k) % 4000 for k in range(PROMPT_TOKENS)],
             "output": "calibration"} for i in range(DATASET_SAMPLES)]
    dataset = folder / "calibration_dataset.json"
    dataset.write_text(json.dumps(rows))
    return tokenizer_dir, dataset


def _run_client(name: str, url: str, tokenizer: Path, dataset: Path, folder: Path,
                args: Sequence[str]) -> dict:
    output = folder / name
    command = [sys.executable, "-m", "client_sut", "run", "--endpoint", url, "--tokenizer",
               str(tokenizer), "--dataset", str(dataset), "--output-dir", str(output),
               "--no-report", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    completed = subprocess.run(command, capture_output=True, text=True, env=env,
                               timeout=RUN_TIMEOUT_S)
    results_path = output / "results.json"
    if not results_path.is_file():
        raise RuntimeError(f"calibration run {name} failed (exit {completed.returncode}): "
                           f"{completed.stderr.strip().splitlines()[-1:]}")
    return json.loads(results_path.read_text())


def _requests(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "requests.jsonl").read_text().splitlines()]


def _against_emitter(name: str, emitter_args: Sequence[str], client_args: Sequence[str],
                     inputs: tuple[Path, Path], output_dir: Path) -> tuple[dict, list[dict], float]:
    """One client run against a fresh emitter: its results, the emitter's log and CPU seconds."""
    emitter = EmitterProcess(*emitter_args)
    try:
        cpu_before = emitter.cpu_seconds()
        results = _run_client(name, emitter.url, *inputs, output_dir, client_args)
        return results, emitter.log(), emitter.cpu_seconds() - cpu_before
    finally:
        emitter.stop()


def measure_timing(name: str, plan: CalibrationPlan, pacing: Sequence[str],
                   inputs: tuple[Path, Path], output_dir: Path) -> dict:
    """A Server run at the plan's timing load against an emitter paced by `pacing`: every
    stamp's error against the emitter's record, and the run's self-check."""
    timed, log, _ = _against_emitter(
        name, [*pacing, "--first-token-ms", str(plan.timing_first_token_ms),
               "--output-tokens", str(plan.output_tokens)],
        ["--scenario", "Server", "--target-qps", f"{plan.timing_qps:.3f}",
         "--duration", str(plan.timing_duration_s), "--min-query-count", "1",
         "--workers", str(plan.workers)],
        inputs, output_dir)
    return timing_errors(_requests(output_dir / name), log) | {
        "load": {"target_qps": round(plan.timing_qps, 2), "streams": plan.timing_streams,
                 "tokens_per_second_per_stream": round(1000 / plan.timing_gap_ms, 1)},
        "loadgen_result": timed["loadgen"]["result"],
        "self_check": timed["self_check"],
    }


def calibrate(output_dir: Path, plan: CalibrationPlan, progress: Progress) -> dict:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --output-dir {output_dir} ({exc.strerror})") from None
    started = time.monotonic()
    report: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()},
                    "plan": asdict(plan) | {"timing_qps": round(plan.timing_qps, 2)}}

    if not 0 <= plan.workers <= min(plan.capacity_streams, plan.timing_streams):
        raise UsageError(f"--workers {plan.workers}: give 0 to "
                         f"{min(plan.capacity_streams, plan.timing_streams)} worker processes")
    inputs = write_inputs(output_dir)
    workers = ["--workers", str(plan.workers)]
    offline = ["--scenario", "Offline", "--duration", "0.1",
               "--max-concurrency", str(plan.capacity_streams), *workers]
    flat_out = ["--engine-step-ms", "0", "--first-token-ms", "0"]

    def capacity(name: str, emitter_args: list[str], requests: int) -> dict:
        results, _, emitter_cpu_s = _against_emitter(
            name, emitter_args, offline + ["--min-query-count", str(requests)], inputs,
            output_dir)
        return capacity_summary(results) | {"emitter_cpu_s": round(emitter_cpu_s, 3)}

    tokens = str(plan.output_tokens)
    progress(f"token capacity: {plan.capacity_requests} requests x {tokens} tokens, "
             f"{plan.capacity_streams} streams, one event per write, engine steps back to back")
    token_capacity = capacity("capacity-tokens", flat_out + ["--output-tokens", tokens],
                              plan.capacity_requests)
    progress("the same with each whole response in one write")
    whole = capacity("capacity-tokens-whole-response",
                     ["--first-token-ms", "0", "--gap-ms", "0", "--output-tokens", tokens],
                     plan.capacity_requests)
    progress(f"request capacity: {plan.short_requests} requests x 2 tokens")
    request_capacity = capacity("capacity-requests", flat_out + ["--output-tokens", "2"],
                                plan.short_requests)

    def timing(name: str, pacing: list[str]) -> dict:
        return measure_timing(name, plan, pacing, inputs, output_dir)

    progress(f"timing error: Server at {plan.timing_qps:.1f} QPS (~{plan.timing_streams} streams "
             f"x {1000 / plan.timing_gap_ms:.0f} tokens/s) for {plan.timing_duration_s:g} s")
    timed = timing("timing", ["--gap-ms", str(plan.timing_gap_ms)])
    progress("the same with engine steps: each step's writes in one burst")
    stepped = timing("timing-engine-steps", ["--engine-step-ms", str(plan.timing_gap_ms)])

    report["capacity"] = {
        "max_tokens_per_second": token_capacity["tokens_per_second"],
        "max_requests_per_second": request_capacity["requests_per_second"],
        "tokens": token_capacity,
        "tokens_whole_response_per_read": whole,
        "requests": request_capacity,
    }
    report["timing"] = timed
    report["timing_engine_steps"] = stepped
    report["seconds"] = round(time.monotonic() - started, 1)
    (output_dir / "calibrate.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def summary_lines(report: dict, path: Path) -> list[str]:
    from client_sut.runs.summary import fmt_number

    tokens, requests = report["capacity"]["tokens"], report["capacity"]["requests"]
    whole = report["capacity"]["tokens_whole_response_per_read"]
    timing, stepped = report["timing"], report["timing_engine_steps"]
    load = timing["load"]

    def p(figure: dict, key: str = "p99") -> str:
        return fmt_number(figure[key], 3)

    workers = report["plan"].get("workers", 0)
    return [
        f"client capacity on this machine ({report['machine']['cpus']} CPUs"
        + (f", streams over {workers} worker processes" if workers else "") + "):",
        f"  streamed tokens/s   {fmt_number(tokens['tokens_per_second'], 0)}  "
        f"(client CPU {fmt_number(tokens['client_cpu_us_per_token'], 2)} us/token: one core "
        f"takes {fmt_number(tokens['one_core_tokens_per_second'], 0)}; event loop busy "
        f"{fmt_number((tokens['event_loop_busy_share'] or 0) * 100, 0)}%; one event per read, "
        f"as vLLM streams)",
        f"  whole response/read {fmt_number(whole['tokens_per_second'], 0)}  (client CPU "
        f"{fmt_number(whole['client_cpu_us_per_token'], 2)} us/token; no busy vLLM sends this)",
        f"  requests/s          {fmt_number(requests['requests_per_second'], 0)}  (2-token answers)",
        f"timing error at {load['streams']} streams x {load['tokens_per_second_per_stream']:g} "
        f"tokens/s ({timing['requests_matched']} requests), ms    p50 / p99 / max:",
        f"  TTFT  {p(timing['ttft_error_ms'], 'p50')} / {p(timing['ttft_error_ms'])} / "
        f"{p(timing['ttft_error_ms'], 'max')}",
        f"  TPOT  {p(timing['tpot_abs_error_ms'], 'p50')} / {p(timing['tpot_abs_error_ms'])} / "
        f"{p(timing['tpot_abs_error_ms'], 'max')}  (absolute)",
        f"  ITL   {p(timing['itl_abs_error_ms'], 'p50')} / {p(timing['itl_abs_error_ms'])} / "
        f"{p(timing['itl_abs_error_ms'], 'max')}  (absolute)",
        f"  first token to LoadGen {p(timing['first_token_to_loadgen_ms'], 'p50')} / "
        f"{p(timing['first_token_to_loadgen_ms'])} / {p(timing['first_token_to_loadgen_ms'], 'max')}",
        f"  with engine steps (one burst of writes per step): TTFT "
        f"{p(stepped['ttft_error_ms'], 'p50')} / {p(stepped['ttft_error_ms'])} / "
        f"{p(stepped['ttft_error_ms'], 'max')}, TPOT {p(stepped['tpot_abs_error_ms'], 'p50')} / "
        f"{p(stepped['tpot_abs_error_ms'])} / {p(stepped['tpot_abs_error_ms'], 'max')}",
        f"written: {path}",
    ]
