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
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import mlperf_loadgen as lg

from client_sut.accuracy.audit import audit_config_path, verify_test06
from client_sut.accuracy.evaluate import evaluate_rows
from client_sut.accuracy.reference import Reference, check_covers, read_reference
from client_sut.accuracy.rouge import read_accuracy_log, write_accuracy
from client_sut.analysis.breach import Breach, BreachRule, BreachWatch, most_queries
from client_sut.analysis.health import lost_endpoints
from client_sut.analysis.loadgen_logs import loadgen_summary, read_detail_log
from client_sut.config import (
    LatencyLimits,
    Mode,
    PromptForm,
    RunConfig,
    Scenario,
    validate,
)
from client_sut.data.dataset import Sample, load_samples, prompt_texts, tokenize_prompts
from client_sut.data.token_cache import cache_key, cached_prompt_ids
from client_sut.data.token_bytes import TokenBytes
from client_sut.data.tokenization import LazyTokenizer, load_tokenizer
from client_sut.dialect import (
    IDS_LOGPROBS,
    IDS_STREAMED,
    Capabilities,
    Dialect,
    describe,
    dialect_notes,
)
from client_sut.errors import EXIT_INTERRUPTED, UsageError
from client_sut.eventloop import run_event_loop
from client_sut.measure.cores import auto_workers, plan_cores
from client_sut.measure.dispatch import EndpointPool
from client_sut.measure.ejection import EjectionLog
from client_sut.measure.health import health_probe, not_answering
from client_sut.measure.heap import HeapFreezer
from client_sut.measure.record_log import RecordLog
from client_sut.measure.resources import check_open_files, file_budget, raise_open_files
from client_sut.measure.selfcheck import (
    CAPACITY_SAFE_SHARE,
    Calibration,
    CpuSample,
    LoopLagProbe,
    load_calibration,
    self_check,
)
from client_sut.measure.sut import ClientSut, LoadGenBridge, LoadGenSut, Recover
from client_sut.measure.transport import kernel_stamped
from client_sut.measure.warmup import warm_up, warmup_samples
from client_sut.measure.worker import WorkerSpec
from client_sut.measure.workers import WorkerSut, concurrency_shares
from client_sut.observe.observer import RunObserver
from client_sut.preflight.dialect_probe import one_request_shape, probe_dialects
from client_sut.preflight.discovery import discover, endpoint_origins
from client_sut.preflight.endpoints import ServedModel, probe_endpoints
from client_sut.records import Answer, RequestRecord
from client_sut.request import request_body
from client_sut.runs.results import build_results, exit_status, write_results
from client_sut.runs.settings import (
    build_test_settings,
    compliance_notes,
    latency_limits,
)

Progress = Callable[[str], None]
# After an interrupt, how long LoadGen may take to finish on its own. Offline finishes at once
# (every sample is completed); Server keeps its schedule, so the run ends without it.
LOADGEN_GRACE_S = 2.0
BREACH_CHECK_INTERVAL_S = 0.25


@dataclass(frozen=True, slots=True)
class RunOutcome:
    results: dict
    exit_status: int
    output_dir: Path
    loadgen_running: bool = False  # interrupted while LoadGen kept its schedule: exit hard


@dataclass
class _Drive:
    client: LoadGenSut  # its bridge has what LoadGen was told
    probe: LoopLagProbe
    cpu_start: CpuSample
    cpu_end: CpuSample | None = None
    interrupted: bool = False
    loadgen_finished: bool = True
    warmup: dict | None = None
    stopped_early: dict | None = None  # the limit proven broken that ended the run, and why


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


def check_prompt_lengths(prompt_ids: list[tuple[int, ...]], served: ServedModel,
                         max_tokens: int) -> None:
    if served.max_model_len is None:
        return
    limit = served.max_model_len - max_tokens
    too_long = [i for i, ids in enumerate(prompt_ids) if len(ids) > limit]
    if too_long:
        longest = max(len(prompt_ids[i]) for i in too_long)
        said = ("max_model_len" if served.context_from == "max_model_len"
                else f"context per request (a slot's n_ctx at {served.context_from})")
        raise UsageError(
            f"{len(too_long)} prompts exceed the server's {said} {served.max_model_len} minus "
            f"{max_tokens} output tokens (longest: {longest} tokens, sample {too_long[0]} first); "
            f"give the server more context (vLLM --max-model-len; llama-server --ctx-size, "
            f"shared by its --parallel slots) or use fewer samples")


def _request_bodies(config: RunConfig, model: str, texts: list[str],
                    prompt_ids: list[tuple[int, ...]], shape: Capabilities) -> list[bytes]:
    """What each sample asks, in the shape the servers take (their dialect)."""
    send_ids = config.prompt_form is PromptForm.TOKENS and shape.token_prompt
    return [request_body(config.api, model, config.generation,
                         prompt_ids=ids if send_ids else None, prompt_text=text,
                         omit=shape.refused, extra=shape.extra)
            for text, ids in zip(texts, prompt_ids)]


def _probe_dialects(config: RunConfig, model: str, ids: tuple[int, ...], text: str,
                    progress: Progress) -> dict[str, Dialect]:
    """Each endpoint's dialect, from a short request whose prompt is the first warm-up's (no
    dataset sample: no prefix cache is primed for the measured ones)."""
    dialects = asyncio.run(probe_dialects(
        config.endpoints, model, config.api, config.generation,
        ids if config.prompt_form is PromptForm.TOKENS else None, text,
        config.credentials, config.dialect, prompt_length=len(ids)))
    for url, dialect in dialects.items():
        progress(f"{url}: {describe(dialect)}")
        for warning in dialect.warnings:
            progress(f"WARNING: {url}: {warning}")
    return dialects


def execute(config: RunConfig, progress: Progress = _stderr) -> RunOutcome:
    config = validate(config)
    found = discover(config.endpoints, config.endpoints_files)
    config = replace(config, endpoints=tuple(endpoint.url for endpoint in found))
    calibration = load_calibration(config.calibration) if config.calibration else None
    prepare_output_dir(config.output_dir)
    samples = load_samples(config.dataset, config.total_sample_count)
    progress(f"dataset: {len(samples)} samples from {config.dataset}")
    reference = None
    if config.reference is not None:  # a file that cannot judge this run is bad input
        reference = read_reference(config.reference)
        check_covers(reference, range(len(samples)), config.prompt_format.value,
                     config.reference)
    settings = build_test_settings(config, len(samples))
    config = _resolve_workers(config, settings, calibration, progress)
    resources = _check_resources(config)
    credentials = config.credentials
    served = asyncio.run(probe_endpoints(config.endpoints, config.model, credentials))
    model = served.name
    tokenizer_name = config.tokenizer or model
    tokenizer = LazyTokenizer(tokenizer_name)  # loaded only where the run needs it
    warmups = warmup_samples(max(config.warmup, 1))  # the dialect probe's prompt is the first
    all_ids = cached_prompt_ids(
        config.token_cache,
        cache_key(config.dataset, tokenizer_name, len(samples), config.prompt_format.value,
                  warmups=len(warmups)),
        lambda: tokenize_prompts(tokenizer, [*samples, *warmups], config.prompt_format))
    prompt_ids, warmup_ids = all_ids[:len(samples)], all_ids[len(samples):]
    check_prompt_lengths(prompt_ids, served, config.generation.max_tokens)
    limits = latency_limits(settings)
    warmup_texts = prompt_texts(tokenizer, warmups, config.prompt_format)
    dialects = _probe_dialects(config, model, warmup_ids[0], warmup_texts[0], progress)
    if (config.audit is not None or any(d.capabilities.ids != IDS_STREAMED
                                        for d in dialects.values())):
        tokenizer.load()  # the run will need it: a tokenizer that cannot load is bad input
    shape = one_request_shape(dialects)
    notes = compliance_notes(config, len(samples), model, limits,
                             settings.server_target_latency_percentile) + dialect_notes(
        dialects, token_prompt_asked=config.prompt_form is PromptForm.TOKENS)
    judged_limits = limits if config.scenario.loadgen_name == "Server" else None
    bodies = _request_bodies(config, model,
                             prompt_texts(tokenizer, samples, config.prompt_format),
                             prompt_ids, shape)
    warmup_bodies = _request_bodies(config, model, warmup_texts[:config.warmup],
                                    warmup_ids[:config.warmup], shape)
    breach_rule = (_breach_rule(settings, limits, len(samples)) if config.stop_when_sla_fails
                   else None)

    def retokenize(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    progress(f"running {config.scenario.value} {config.mode.value} against "
             f"{', '.join(config.endpoints)} (model {model})")
    started = time.monotonic()
    observer = RunObserver(config, model, min_duration_s=settings.min_duration_ms / 1000,
                           limits_ms=(judged_limits.ttft_ms, judged_limits.tpot_ms)
                           if judged_limits else (None, None), message=progress,
                           paths={url: d.paths for url, d in dialects.items()})
    # Built before the run (a large vocabulary takes a tenth of a second), for the servers
    # that may leave ids out.
    recover = (TokenBytes(tokenizer).recover
               if any(d.capabilities.ids == IDS_LOGPROBS for d in dialects.values()) else None)
    drive = run_event_loop(_drive(config, bodies, settings, retokenize, len(samples), progress,
                                  warmup_bodies, breach_rule, observer, recover))
    bridge = drive.client.bridge
    records = bridge.log.finish(config.output_dir / "requests.jsonl")
    progress(f"LoadGen {'finished' if drive.loadgen_finished else 'still running'} after "
             f"{time.monotonic() - started:.1f} s; writing results")
    loadgen = loadgen_summary(read_detail_log(config.output_dir))
    check = self_check(records, drive.probe.lags, drive.cpu_start, drive.cpu_end,
                       calibration, queued_by_design=config.scenario is Scenario.OFFLINE,
                       workers=drive.client.worker_stats)
    check["core_plan"] = drive.client.core_plan.to_json()
    check["first_token_stamps"] = {url: "kernel" if kernel_stamped(url) else "read"
                                   for url in config.endpoints}
    results = build_results(config, model=model, sample_count=len(samples), notes=notes,
                            loadgen=loadgen, records=records, issued=bridge.issued,
                            self_check=check, limits=judged_limits, warmup=drive.warmup,
                            interrupted=drive.interrupted, stopped_early=drive.stopped_early,
                            origins=endpoint_origins(found))
    results["client"]["resources"] = resources
    run_end_ns = max((r.end_ns for r in records), default=time.perf_counter_ns())
    for endpoint in results["endpoints"]:
        dialect = dialects[endpoint["url"]]
        endpoint.update(dialect=dialect.to_json(), capabilities=dialect.capabilities.to_json(),
                        ejections=drive.client.ejections.of(endpoint["url"], run_end_ns),
                        connection_per_request=drive.client.connection_per_request.get(
                            endpoint["url"]))
    finished = not drive.interrupted and drive.stopped_early is None
    interrupt = _RememberedInterrupt()
    try:  # scoring can take minutes: an interrupt stops it, and the run is written without it
        interrupt.arm()
        if finished and config.mode is Mode.ACCURACY:
            progress("scoring accuracy (ROUGE)")
            results["accuracy"] = _score_accuracy(config, samples, tokenizer_name, reference)
        if finished and config.audit is not None:
            results["audit"] = verify_test06(
                read_accuracy_log(config.output_dir / "mlperf_log_accuracy.json"),
                eos_token_id=tokenizer.eos_token_id,
                check_first_token=config.scenario.streams_first_token)
        interrupt.raise_if_dropped()
    except KeyboardInterrupt:  # after LoadGen ended: what was measured is still written
        progress("interrupted: writing what was measured, without the verdict being computed")
        drive.interrupted = results["interrupted"] = True
        results["compliant"] = False
        results["compliance_notes"].append("the run was interrupted")
        for verdict in ("accuracy", "audit"):  # an interrupted run carries none, even if done
            results.pop(verdict, None)
    _signals_ignored()
    if "accuracy" in results:
        write_accuracy(config.output_dir / "accuracy.json", results["accuracy"])
    observer.annotate(results, records, [len(ids) for ids in prompt_ids])
    for endpoint in lost_endpoints(results["endpoints"]):
        progress(f"the server at {endpoint['url']} {endpoint['health']['summary']}")
    write_results(config.output_dir / "results.json", results)
    interrupt.arm()  # what was measured is written: a signal may now stop the report
    status = EXIT_INTERRUPTED if drive.interrupted else exit_status(results)
    return RunOutcome(results, status, config.output_dir,
                      loadgen_running=not drive.loadgen_finished)


def _resolve_workers(config: RunConfig, settings, calibration: Calibration | None,
                     progress: Progress) -> RunConfig:
    """`--workers auto` made a number, from the rate LoadGen will ask for and the calibrated
    capacity of one core."""
    if config.client_workers is not None:
        return config
    rate = (settings.server_target_qps if config.scenario.loadgen_name == "Server"
            else settings.offline_expected_qps)
    workers, why = auto_workers(
        rate * config.generation.max_tokens if rate > 0 else None,
        calibration.one_core_tokens_per_second if calibration else None,
        len(os.sched_getaffinity(0)), CAPACITY_SAFE_SHARE)
    workers = min(workers, config.max_concurrency)
    progress(f"--workers auto: {workers} ({why})")
    return replace(config, client_workers=workers)


def _check_resources(config: RunConfig) -> dict:
    """This process's open-file limit raised, and the run refused where the busiest client
    process could not hold its streams (measure/resources.py); results.json's
    `client.resources`."""
    budget = file_budget(config.max_concurrency, len(config.endpoints), config.client_workers,
                         any(kernel_stamped(url) for url in config.endpoints))
    return check_open_files(budget, raise_open_files(), config.client_workers)


def _score_accuracy(config: RunConfig, samples: list[Sample], tokenizer_name: str,
                    reference: Reference | None) -> dict:
    return evaluate_rows(read_accuracy_log(config.output_dir / "mlperf_log_accuracy.json"),
                         [sample.reference for sample in samples],
                         load_tokenizer(tokenizer_name, use_fast=False),
                         category=config.scenario.category, workers=config.scoring_workers,
                         reference=reference, reference_path=config.reference or "",
                         prompt_format=config.prompt_format.value)


async def _drive(config: RunConfig, bodies: list[bytes], settings, retokenize,
                 sample_count: int, progress: Progress, warmup_bodies: list[bytes],
                 breach_rule: BreachRule | None, observer: RunObserver,
                 recover: Recover | None) -> _Drive:
    loop = asyncio.get_running_loop()
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(config.output_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False
    bridge = LoadGenBridge(report_first_token=config.scenario.streams_first_token,
                           retokenize=retokenize, redact=config.credentials.redact,
                           log=RecordLog(config.output_dir), recover=recover)
    health_paths = {url: paths.health for url, paths in observer.paths.items()}
    async with _streams(config, bridge, bodies, warmup_bodies, health_paths,
                        progress) as (client, warmup):
        if warmup["requests"] and warmup["errors"]:
            progress(f"warm-up: {warmup['errors']} of {warmup['requests']} requests failed, "
                     f"e.g. {warmup['first_error']}")
            _check_still_answering(config, health_paths)
        sut = lg.ConstructSUT(client.issue_queries, client.flush_queries)
        qsl = lg.ConstructQSL(sample_count, sample_count, _noop, _noop)
        audit = [str(audit_config_path(config.audit))] if config.audit else []
        probe = LoopLagProbe(loop)
        # After the warm-up: its baseline scrape opens the window.
        observer.start(loop, bridge, probe.lags)
        freezer = HeapFreezer(loop)  # set-up's heap: a full collection of it sent queries late
        drive = _Drive(client, probe, CpuSample.now(), warmup=warmup)
        drive.probe.start()
        loadgen = _start_loadgen(loop, sut, qsl, settings, log_settings, *audit)
        interrupt = asyncio.Event()
        _on_signals(loop, interrupt)
        watch = None if breach_rule is None else loop.create_task(
            _watch_for_breach(bridge, BreachWatch(breach_rule)))
        try:
            waiter = loop.create_task(interrupt.wait())
            ends = {loadgen, waiter} | ({watch} if watch else set())
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            breach = watch.result() if watch is not None and watch.done() else None
            if interrupt.is_set() or breach is not None:
                if breach is not None:
                    drive.stopped_early = {"constraint": breach.constraint,
                                           "reason": breach.reason}
                    progress(f"stopping early: the {breach.constraint} limit is lost: "
                             f"{breach.reason}")
                else:
                    drive.interrupted = True
                    progress("interrupted: completing every outstanding sample, stopping")
                client.stop()
                await asyncio.wait({loadgen}, timeout=LOADGEN_GRACE_S)
                drive.loadgen_finished = loadgen.done()
        finally:
            drive.cpu_end = CpuSample.now()
            drive.probe.stop()
            observer.stop()
            if watch is not None:
                watch.cancel()
            freezer.cancel()
            _off_signals(loop)
            if loadgen.done():
                loadgen.result()  # a LoadGen exception surfaces here
                lg.DestroyQSL(qsl)
                lg.DestroySUT(sut)
            # else LoadGen still runs on its thread and holds these: the process exits hard.
    return drive


@asynccontextmanager
async def _streams(config: RunConfig, bridge: LoadGenBridge, bodies: list[bytes],
                   warmup_bodies: list[bytes], health_paths: dict[str, str | None],
                   progress: Progress):
    """The client LoadGen drives, warmed up: the streams on this process's event loop, or
    sharded over worker processes (--workers). Yields it and the warm-up's summary."""
    credentials = config.credentials
    ejections = EjectionLog(progress)
    if warmup_bodies:
        progress(f"warm-up: {len(warmup_bodies)} untimed requests per endpoint"
                 + (f" from each of {config.client_workers} client worker processes"
                    if config.client_workers else ""))
    if not config.client_workers:
        async with EndpointPool(config.endpoints, config.max_concurrency, config.timeouts,
                                ssl_context=credentials.ssl_context(),
                                headers=credentials.headers,
                                health=health_probe(credentials, health_paths),
                                on_ejection=ejections) as pool:
            warmup = {"requests": 0}
            if warmup_bodies:
                warmup = await warm_up(pool, config.api, warmup_bodies, credentials.redact)
            client = ClientSut(asyncio.get_running_loop(), pool, config.api, bodies, bridge,
                               ejections)
            yield client, warmup
            client.connection_per_request = {url: connections.closes_after_response
                                             for url, connections in pool.connection_pools()}
        return
    plan = plan_cores(config.client_workers, os.sched_getaffinity(0))
    specs = [WorkerSpec(index, config.endpoints, share, config.timeouts, credentials,
                        config.api, tuple(bodies), tuple(warmup_bodies), plan.workers[index],
                        tuple(health_paths.items()))
             for index, share in enumerate(concurrency_shares(config.max_concurrency,
                                                              config.client_workers))]
    client = WorkerSut(bridge, specs, plan, ejections)
    try:
        warmup = await client.start()
        yield client, warmup
    finally:
        await client.close()


def _check_still_answering(config: RunConfig, health_paths: dict[str, str | None]) -> None:
    """A server that stopped answering during the warm-up is not measured: nothing LoadGen
    issued has been sent yet, so this is the run's last check before it starts. Each server is
    asked where its kind keeps its health (never a LiteLLM proxy's /health)."""
    silent = [c for c in not_answering(config.endpoints, config.credentials,
                                       paths=health_paths)
              if c.answer is Answer.DOWN]  # a slow answer is a busy server, not a gone one
    if silent:
        raise UsageError("; ".join(f"{c.endpoint} stopped answering during the warm-up "
                                   f"({c.detail}); nothing was measured" for c in silent))


def _breach_rule(settings, limits: LatencyLimits, sample_count: int) -> BreachRule:
    padding = sample_count if settings.sample_concatenate_permutation else None
    return BreachRule(limits.ttft_ms, limits.tpot_ms, most_queries(
        settings.server_target_qps, settings.min_duration_ms / 1000, settings.min_query_count,
        padding))


async def _watch_for_breach(bridge: LoadGenBridge, watch: BreachWatch) -> Breach:
    """Returns once the run's p99 limits are proven broken (never, for a run that keeps them)."""
    finished: list[RequestRecord] = []
    bridge.log.listeners.append(finished.append)
    while True:
        await asyncio.sleep(BREACH_CHECK_INTERVAL_S)
        breach = watch.update(finished, bridge.first_token_waits(), time.perf_counter_ns())
        finished.clear()
        if breach is not None:
            return breach


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
    """Once LoadGen is done, a signal must not kill the process before what was measured is
    written (the loop's removal of its handlers leaves the system's default, which would)."""
    for sig in _SIGNALS:
        loop.remove_signal_handler(sig)
    _signals_ignored()


def _signals_ignored() -> None:
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class _RememberedInterrupt:
    """Both signals raise KeyboardInterrupt, as Ctrl-C does by default, and are remembered:
    Python drops an exception raised while the garbage collector runs a callback (it only
    prints "Exception ignored"), so an interrupt that lands there during the scoring would
    otherwise let it run on to its end."""

    def __init__(self) -> None:
        self.received = False

    def arm(self) -> None:
        for sig in _SIGNALS:
            signal.signal(sig, self._interrupt)

    def _interrupt(self, _signum, _frame) -> None:
        self.received = True
        raise KeyboardInterrupt

    def raise_if_dropped(self) -> None:
        if self.received:
            raise KeyboardInterrupt


def _noop(_samples) -> None:
    """The QSL holds every sample in memory already: nothing to load or unload."""
