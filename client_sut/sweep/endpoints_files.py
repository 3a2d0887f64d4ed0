"""Each point's MLPerf Endpoints files, written into the folder `run` made for it:
`performance/result_summary.json` (analysis/endpoints_summary.py), `config.yaml` (the run's
settings as Endpoints' BenchmarkConfig names them, with the seeds LoadGen used) and `events.jsonl`
(one record per event, on the monotonic clock: the client's stamps are perf_counter_ns, which on
Linux is CLOCK_MONOTONIC, Endpoints' time.monotonic_ns).

config.yaml's `min_duration_ms` is the official floor of the point (600 s Ultra-Low, 1,200 s
elsewhere); a point shorter by `--point-duration` has `max_duration_ms` too, the length it was cut
to, as a run stopped early by its max duration reads in Endpoints. Its measured length is
result_summary's `duration_ns`: the MLCommons checker reads only the setting, so the sweep's
own checks compare the measured length with the floor.

The events: `session.started`, `session.start_performance_tracking`, then per request
`sample.issued` (sent), `sample.recv_first` (its first token), `sample.recv_non_first` (each
further token-bearing chunk: stream_all_chunks), `error.generic` for a failed one, and
`sample.complete` with its finish reason; then `session.stop_performance_tracking` and
`session.ended`. The client keeps no prompt or response text per request, so `data` is null
but for an error's `["ErrorData", kind, message]`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import msgspec
import yaml

from client_sut.analysis.endpoints_summary import result_summary
from client_sut.analysis.loadgen_logs import read_detail_log
from client_sut.records import RequestRecord

MODEL_NAME = "meta-llama/Llama-3.1-8B-Instruct"


def _uuid(record: RequestRecord, number: int) -> str:
    return f"{number:08x}{record.sample_index:024x}"


def event_lines(records: Sequence[RequestRecord]) -> list[dict]:
    """events.jsonl's records, in time order."""
    events = []
    for number, record in enumerate(sorted(records, key=lambda r: r.send_ns)):
        uuid = _uuid(record, number)

        def event(kind: str, at: int, data=None, **extra) -> None:
            events.append({"event_type": kind, "timestamp_ns": at, "sample_uuid": uuid,
                           "conversation_id": "", "turn": None, "data": data, **extra})

        event("sample.issued", record.send_ns)
        first = True
        for at, tokens in zip(record.event_ns, record.event_tokens):
            if tokens:
                event("sample.recv_first" if first else "sample.recv_non_first", at)
                first = False
        if record.error is not None:
            event("error.generic", record.end_ns,
                  ["ErrorData", record.error.kind.value, record.error.message])
        event("sample.complete", record.end_ns,
              **({"finish_reason": record.finish_reason} if record.finish_reason else {}))
    events.sort(key=lambda e: e["timestamp_ns"])
    if not events:
        return []
    start, end = events[0]["timestamp_ns"], events[-1]["timestamp_ns"]

    def session(kind: str, at: int) -> dict:
        return {"event_type": kind, "timestamp_ns": at, "sample_uuid": "",
                "conversation_id": "", "turn": None, "data": None}

    return [session("session.started", start),
            session("session.start_performance_tracking", start), *events,
            session("session.stop_performance_tracking", end), session("session.ended", end)]


def benchmark_config(name: str, load_pattern: dict, durations_ms: tuple[int, int], queries: int,
                     seeds: dict, endpoints: Sequence[str], offline: bool) -> dict:
    """config.yaml: the run as Endpoints' BenchmarkConfig names it (no secrets: none is kept).
    Its `type` is Endpoints' command: `offline` (everything at once), else `online` (a fixed
    concurrency or rate). durations_ms: the official floor and the point's own length."""
    floor_ms, length_ms = durations_ms
    cut = {"max_duration_ms": length_ms} if length_ms < floor_ms else {}
    return {
        "name": name,
        "version": "1.0",
        "type": "offline" if offline else "online",
        "model_params": {"name": MODEL_NAME, "temperature": 0.0, "top_k": 1, "top_p": 1.0,
                         "max_new_tokens": 128, "min_new_tokens": 1, "streaming": "on"},
        "settings": {
            "runtime": {"min_duration_ms": floor_ms, **cut, "n_samples_to_issue": queries,
                        **seeds},
            "load_pattern": load_pattern,
            "client": {"stream_all_chunks": True},
            "early_stopping": {"enabled": True},
        },
        "endpoint_config": {"endpoints": list(endpoints), "api_type": "openai"},
    }


def loadgen_seeds(run_dir: Path) -> dict:
    """The seeds LoadGen used, under Endpoints' names (its v6.1 ruleset takes LoadGen's)."""
    values = read_detail_log(run_dir).values
    return {"scheduler_random_seed": values.get("effective_schedule_rng_seed"),
            "dataloader_random_seed": values.get("effective_sample_index_rng_seed")}


def write_point_files(run_dir: Path, records: Sequence[RequestRecord],
                      prompt_lengths: Sequence[int], load_pattern: dict,
                      durations_ms: tuple[int, int], queries: int, endpoints: Sequence[str],
                      interrupted: bool) -> None:
    """The three files of one point into run_dir (beside what `run` wrote there)."""
    seeds = loadgen_seeds(run_dir)
    poisson = load_pattern["type"] == "poisson"
    offline = load_pattern["type"] == "max_throughput"
    run_config = {"load_pattern": load_pattern, "scheduler_random_seed":
                  seeds["scheduler_random_seed"], "dataloader_random_seed":
                  seeds["dataloader_random_seed"]}
    lengths = [prompt_lengths[r.sample_index] if r.sample_index < len(prompt_lengths) else 0
               for r in records]
    performance = run_dir / "performance"
    performance.mkdir(exist_ok=True)
    summary = result_summary(records, lengths, poisson, run_config, interrupted)
    (performance / "result_summary.json").write_text(json.dumps(summary, indent=2) + "\n",
                                                     encoding="utf-8")
    config = benchmark_config(run_dir.name, load_pattern, durations_ms, queries, seeds,
                              endpoints, offline)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False),
                                         encoding="utf-8")
    encode = msgspec.json.Encoder().encode
    with (run_dir / "events.jsonl").open("wb") as out:
        for line in event_lines(records):
            out.write(encode(line) + b"\n")
