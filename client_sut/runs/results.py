"""results.json: what a run measured, in the contract's shape (requests.jsonl: requests_file)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from client_sut.analysis.failures import failed_requests
from client_sut.analysis.headroom import headroom
from client_sut.analysis.metrics import client_summary, endpoint_summaries, goodput
from client_sut.analysis.replicas import replica_balance
from client_sut.config import LatencyLimits, Mode, RunConfig, Scenario
from client_sut.errors import EXIT_FAILED, EXIT_OK
from client_sut.records import RequestRecord

CLOCK = "CLOCK_MONOTONIC nanoseconds (time.perf_counter_ns); LoadGen uses the same clock"


def build_results(config: RunConfig, *, model: str, sample_count: int, notes: list[str],
                  loadgen: dict, records: Sequence[RequestRecord], issued: int,
                  self_check: dict, limits: LatencyLimits | None, warmup: dict,
                  interrupted: bool = False, stopped_early: dict | None = None,
                  origins: dict[str, dict] | None = None) -> dict:
    """`limits`: the p99 limits the run is judged by (None: Offline and SingleStream have none).
    `stopped_early`: the limit proven broken that ended the run early, and why
    (--stop-when-sla-fails).
    `origins`: per endpoint URL, how it was found and reached (discovery.endpoint_origins)."""
    client = client_summary(records)
    endpoints = [{**summary, **(origins or {}).get(summary["url"], {})}
                 for summary in endpoint_summaries(records, config.endpoints)]
    balance = replica_balance(records, config.endpoints)
    client["issued"] = issued
    client["goodput"] = goodput(records, limits and limits.ttft_ms, limits and limits.tpot_ms)
    room = headroom(self_check, issue_lag_counts=config.scenario is not Scenario.OFFLINE)
    client["headroom"] = room.to_json()
    # Failed requests first: whatever else the run was, it did not measure the deployment.
    failed = failed_requests(client, endpoints)
    notes = (([failed] if failed else []) + notes + ([room.line] if room.bottleneck else [])
             + one_token_notes(client["one_token_answers"], config.mode))
    return {
        "scenario": config.scenario.value,
        "mode": config.mode.value,
        "model": model,
        "api": config.api.value,
        "prompt_form": config.prompt_form.value,
        "prompt_format": config.prompt_format.value,
        "dataset": config.dataset,
        "sample_count": sample_count,
        "compliant": not notes and not interrupted and not stopped_early,
        "compliance_notes": notes + (["the run was interrupted"] if interrupted else [])
        + ([f"the run was stopped early: {stopped_early['reason']}"] if stopped_early else []),
        "interrupted": interrupted,
        "stopped_early": stopped_early,
        "tls_verification": config.credentials.verify_tls,
        "settings": {
            "target_qps": config.target_qps,
            "duration_s": config.duration_s,
            "min_query_count": config.min_query_count,
            "max_concurrency_per_endpoint": config.max_concurrency,
            "generation": asdict(config.generation),
        },
        "warmup": warmup,
        "loadgen": loadgen,
        "client": client,
        "endpoints": endpoints,
        "replica_balance": balance,
        "warnings": balance["warnings"] if balance else [],
        "self_check": self_check,
        "clock": CLOCK,
    }


def one_token_notes(single: dict, mode: Mode) -> list[str]:
    """A run with one-token answers says so: its detail log has LoadGen errors, which the
    submission checker rejects in an accuracy run."""
    if not single["count"]:
        return []
    return [f"{single['count']} answers were a single token (samples {single['samples'][:5]}; "
            f"the server ignored min_tokens 1 or stopped at once): reported with their true "
            f"count, " + single["loadgen"].replace("LoadGen logs", "and LoadGen logged")
            + ("; the submission checker rejects an accuracy log with LoadGen errors"
               if mode is Mode.ACCURACY else "")]


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


def write_results(path: Path, results: dict) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
