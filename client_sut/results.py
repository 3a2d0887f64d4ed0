"""results.json and requests.jsonl: what a run measured, in the contract's shape."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import msgspec

from client_sut.config import Mode, RunConfig
from client_sut.errors import EXIT_FAILED, EXIT_OK
from client_sut.metrics import client_summary, endpoint_summaries
from client_sut.records import RequestRecord

CLOCK = "CLOCK_MONOTONIC nanoseconds (time.perf_counter_ns); LoadGen uses the same clock"


def build_results(config: RunConfig, *, model: str, sample_count: int, notes: list[str],
                  loadgen: dict, records: Sequence[RequestRecord], issued: int,
                  self_check: dict, interrupted: bool = False) -> dict:
    client = client_summary(records)
    client["issued"] = issued
    return {
        "scenario": config.scenario.value,
        "mode": config.mode.value,
        "model": model,
        "api": config.api.value,
        "prompt_form": config.prompt_form.value,
        "dataset": config.dataset,
        "sample_count": sample_count,
        "compliant": not notes and not interrupted,
        "compliance_notes": notes + (["the run was interrupted"] if interrupted else []),
        "interrupted": interrupted,
        "tls_verification": config.credentials.verify_tls,
        "settings": {
            "target_qps": config.target_qps,
            "duration_s": config.duration_s,
            "min_query_count": config.min_query_count,
            "max_concurrency_per_endpoint": config.max_concurrency,
            "generation": asdict(config.generation),
        },
        "loadgen": loadgen,
        "client": client,
        "endpoints": endpoint_summaries(records, config.endpoints),
        "self_check": self_check,
        "clock": CLOCK,
    }


def exit_status(results: dict) -> int:
    """0: finished with no request errors, VALID, accuracy and audit passed; else 1."""
    if results["client"]["errors"] or results["client"]["issued"] != results["client"]["requests"]:
        return EXIT_FAILED
    # An audit run (TEST06: 100 queries) is too short for LoadGen to call VALID; it is judged by
    # its verification alone.
    judged_by_loadgen = results["mode"] == Mode.PERFORMANCE.value and "audit" not in results
    if judged_by_loadgen and results["loadgen"]["result"] != "VALID":
        return EXIT_FAILED
    for verdict in (results.get("accuracy"), results.get("audit")):
        if verdict is not None and not verdict["passed"]:
            return EXIT_FAILED
    return EXIT_OK


def record_line(record: RequestRecord) -> dict:
    return {
        "sample_index": record.sample_index,
        "endpoint": record.endpoint,
        "response_id": record.response_id,
        "issue_ns": record.issue_ns,
        "connect_ns": record.connect_ns,
        "send_ns": record.send_ns,
        "first_byte_ns": record.first_byte_ns,
        "first_reported_ns": record.first_reported_ns,
        "end_ns": record.end_ns,
        "event_ns": record.event_ns.tolist(),
        "event_tokens": record.event_tokens.tolist(),
        "output_tokens": record.output_tokens,
        "server_completion_tokens": record.server_completion_tokens,
        "streamed_tokens": record.streamed_tokens,
        "token_id_source": record.token_id_source.value,
        "finish_reason": record.finish_reason,
        "http_status": record.http_status,
        "error": None if record.error is None else {"kind": record.error.kind.value,
                                                     "message": record.error.message},
    }


def write_requests(path: Path, records: Sequence[RequestRecord]) -> None:
    encode = msgspec.json.Encoder().encode
    with path.open("wb") as out:
        for record in sorted(records, key=lambda r: r.send_ns):
            out.write(encode(record_line(record)) + b"\n")


def write_results(path: Path, results: dict) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
