"""One `client-sut run`: check everything, drive LoadGen through the client, write the results.

Order matters: every check that can fail on bad input (flags, dataset, endpoints, model,
tokenizer, prompt lengths, user.conf, output folder) runs before LoadGen starts or any measured
request is sent, so bad input costs nothing and exits 2.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlperf_loadgen as lg

from client_sut.accuracy import evaluate_rows, read_accuracy_log, write_accuracy
from client_sut.audit import audit_config_path, verify_test06
from client_sut.config import Mode, PromptForm, RunConfig, Scenario, validate
from client_sut.dataset import Sample, load_samples, tokenize_prompts
from client_sut.dispatch import EndpointPool
from client_sut.endpoints import probe_endpoints
from client_sut.errors import EXIT_INTERRUPTED, UsageError
from client_sut.heap import HeapFreezer
from client_sut.loadgen_logs import loadgen_summary, read_detail_log
from client_sut.results import build_results, exit_status, write_requests, write_results
from client_sut.selfcheck import CpuSample, LoopLagProbe, load_calibration, self_check
from client_sut.settings import build_test_settings, compliance_notes, latency_limits
from client_sut.stream import request_body
from client_sut.sut import ClientSut
from client_sut.tokenization import load_tokenizer

Progress = Callable[[str], None]
PROGRESS_INTERVAL_S = 10.0
# After an interrupt, how long LoadGen may take to finish on its own. Offline finishes at once
# (every sample is completed); Server keeps its schedule, so the run ends without it.
LOADGEN_GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class RunOutcome:
    results: dict
    exit_status: int
    output_dir: Path
    loadgen_running: bool = False  # interrupted while LoadGen kept its schedule: exit hard


@dataclass
class _Drive:
    bridge: ClientSut
    probe: LoopLagProbe
    cpu_start: CpuSample
    cpu_end: CpuSample | None = None
    interrupted: bool = False
    loadgen_finished: bool = True


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_output_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".client_sut_write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"output folder {path} is not writable ({exc.strerror}); pass "
                         f"--output-dir with a folder you can write") from None


def check_prompt_lengths(prompt_ids: list[tuple[int, ...]], max_model_len: int | None,
                         max_tokens: int) -> None:
    if max_model_len is None:
        return
    limit = max_model_len - max_tokens
    too_long = [i for i, ids in enumerate(prompt_ids) if len(ids) > limit]
    if too_long:
        longest = max(len(prompt_ids[i]) for i in too_long)
        raise UsageError(
            f"{len(too_long)} prompts exceed the server's max_model_len {max_model_len} minus "
            f"{max_tokens} output tokens (longest: {longest} tokens, sample {too_long[0]} first); "
            f"start the server with a larger --max-model-len or use fewer samples")


def _request_bodies(config: RunConfig, model: str, samples: list[Sample],
                    prompt_ids: list[tuple[int, ...]]) -> list[bytes]:
    send_ids = config.prompt_form is PromptForm.TOKENS
    return [request_body(config.api, model, config.generation,
                         prompt_ids=ids if send_ids else None, prompt_text=sample.prompt)
            for sample, ids in zip(samples, prompt_ids)]


def execute(config: RunConfig, progress: Progress = _stderr) -> RunOutcome:
    config = validate(config)
    calibration = load_calibration(config.calibration) if config.calibration else None
    prepare_output_dir(config.output_dir)
    samples = load_samples(config.dataset, config.total_sample_count)
    progress(f"dataset: {len(samples)} samples from {config.dataset}")
    credentials = config.credentials
    served = asyncio.run(probe_endpoints(config.endpoints, config.model, credentials))
    model = served.name
    tokenizer_name = config.tokenizer or model
    tokenizer = load_tokenizer(tokenizer_name)
    prompt_ids = tokenize_prompts(tokenizer, samples)
    check_prompt_lengths(prompt_ids, served.max_model_len, config.generation.max_tokens)
    settings = build_test_settings(config, len(samples))
    notes = compliance_notes(config, len(samples), model, latency_limits(settings))
    bodies = _request_bodies(config, model, samples, prompt_ids)

    def retokenize(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    progress(f"running {config.scenario.value} {config.mode.value} against "
             f"{', '.join(config.endpoints)} (model {model})")
    started = time.monotonic()
    drive = _run_loop(_drive(config, bodies, settings, retokenize, len(samples), progress))
    bridge = drive.bridge
    progress(f"LoadGen {'finished' if drive.loadgen_finished else 'still running'} after "
             f"{time.monotonic() - started:.1f} s; writing results")
    loadgen = loadgen_summary(read_detail_log(config.output_dir))
    check = self_check(bridge.records, drive.probe.lags_ns, drive.cpu_start, drive.cpu_end,
                       calibration, queued_by_design=config.scenario is Scenario.OFFLINE)
    results = build_results(config, model=model, sample_count=len(samples), notes=notes,
                            loadgen=loadgen, records=bridge.records, issued=bridge.issued,
                            self_check=check, interrupted=drive.interrupted)
    if not drive.interrupted and config.mode is Mode.ACCURACY:
        progress("scoring accuracy (ROUGE)")
        results["accuracy"] = _score_accuracy(config, samples, tokenizer_name)
    if not drive.interrupted and config.audit is not None:
        results["audit"] = verify_test06(
            read_accuracy_log(config.output_dir / "mlperf_log_accuracy.json"),
            eos_token_id=tokenizer.eos_token_id,
            check_first_token=config.scenario.streams_first_token)
    write_requests(config.output_dir / "requests.jsonl", bridge.records)
    write_results(config.output_dir / "results.json", results)
    status = EXIT_INTERRUPTED if drive.interrupted else exit_status(results)
    return RunOutcome(results, status, config.output_dir,
                      loadgen_running=not drive.loadgen_finished)


def _score_accuracy(config: RunConfig, samples: list[Sample], tokenizer_name: str) -> dict:
    result = evaluate_rows(read_accuracy_log(config.output_dir / "mlperf_log_accuracy.json"),
                           [sample.reference for sample in samples],
                           load_tokenizer(tokenizer_name, use_fast=False),
                           category=config.scenario.category, workers=config.workers)
    write_accuracy(config.output_dir / "accuracy.json", result)
    return result


def _run_loop(coroutine):
    try:
        import uvloop
        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvloop is optional (it does not build everywhere)
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)


async def _drive(config: RunConfig, bodies: list[bytes], settings, retokenize,
                 sample_count: int, progress: Progress) -> _Drive:
    loop = asyncio.get_running_loop()
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(config.output_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False
    credentials = config.credentials
    async with EndpointPool(config.endpoints, config.max_concurrency, config.timeouts,
                            ssl_context=credentials.ssl_context(),
                            headers=credentials.headers) as pool:
        bridge = ClientSut(loop, pool, config.api, bodies,
                           report_first_token=config.scenario.streams_first_token,
                           retokenize=retokenize, redact=credentials.redact)
        sut = lg.ConstructSUT(bridge.issue_queries, bridge.flush_queries)
        qsl = lg.ConstructQSL(sample_count, sample_count, _noop, _noop)
        audit = [str(audit_config_path(config.audit))] if config.audit else []
        freezer = HeapFreezer(loop)  # a full collection mid-run sent queries in late bursts
        drive = _Drive(bridge, LoopLagProbe(loop), CpuSample.now())
        drive.probe.start()
        loadgen = _start_loadgen(loop, sut, qsl, settings, log_settings, *audit)
        interrupt = asyncio.Event()
        _on_signals(loop, interrupt)
        reporter = loop.create_task(_report_progress(bridge, config, progress))
        try:
            waiter = loop.create_task(interrupt.wait())
            await asyncio.wait({loadgen, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if interrupt.is_set():
                drive.interrupted = True
                progress("interrupted: completing every outstanding sample, stopping")
                bridge.stop()
                await asyncio.wait({loadgen}, timeout=LOADGEN_GRACE_S)
                drive.loadgen_finished = loadgen.done()
        finally:
            drive.cpu_end = CpuSample.now()
            drive.probe.stop()
            reporter.cancel()
            freezer.cancel()
            _off_signals(loop)
            if loadgen.done():
                loadgen.result()  # a LoadGen exception surfaces here
                lg.DestroyQSL(qsl)
                lg.DestroySUT(sut)
            # else LoadGen still runs on its thread and holds these: the process exits hard.
    return drive


def _start_loadgen(loop: asyncio.AbstractEventLoop, *args) -> asyncio.Future:
    """LoadGen on a daemon thread of its own, not the loop's executor: after an interrupt in a
    Server run it keeps its schedule, and closing the loop must not wait for it."""
    finished = loop.create_future()

    def report(outcome: BaseException | None) -> None:
        if finished.done():
            return
        if outcome is None:
            finished.set_result(None)
        else:
            finished.set_exception(outcome)

    def run() -> None:
        outcome = None
        try:
            lg.StartTestWithLogSettings(*args)
        except BaseException as exc:  # surfaces on the loop, not lost on this thread
            outcome = exc
        try:
            loop.call_soon_threadsafe(report, outcome)
        except RuntimeError:
            pass  # the loop is closed: the run was interrupted and has been written already

    threading.Thread(target=run, name="loadgen", daemon=True).start()
    return finished


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_signals(loop: asyncio.AbstractEventLoop, interrupt: asyncio.Event) -> None:
    def handle() -> None:
        if interrupt.is_set():  # a second signal: the user wants out now
            os._exit(EXIT_INTERRUPTED)
        interrupt.set()

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, handle)


def _off_signals(loop: asyncio.AbstractEventLoop) -> None:
    for sig in _SIGNALS:
        loop.remove_signal_handler(sig)


def _noop(_samples) -> None:
    """The QSL holds every sample in memory already: nothing to load or unload."""


async def _report_progress(bridge: ClientSut, config: RunConfig, progress: Progress) -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_S)
        elapsed = time.monotonic() - started
        progress(f"  {config.scenario.value}: {bridge.completed}/{bridge.issued} samples done, "
                 f"{bridge.errors} errors, {elapsed:.0f} s")

