"""LoadGen's official figures, read from its `mlperf_log_detail.txt` (`:::MLLOG {json}` lines).

The detail log holds every result the summary prints, as machine-readable keys, plus each error
and warning LoadGen recorded (the submission checker rejects a run with any error there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MLLOG_PREFIX = ":::MLLOG "
PERCENTILES = {"p50": "50.00", "p90": "90.00", "p99": "99.00"}
# Offline reports tokens/s under one key, Server and Interactive under another.
TOKENS_PER_SECOND_KEYS = ("result_tokens_per_second", "result_completed_tokens_per_second")


@dataclass(frozen=True, slots=True)
class LoadGenLog:
    values: dict[str, object]
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def parse_detail_log(text: str) -> LoadGenLog:
    values: dict[str, object] = {}
    errors, warnings = [], []
    for line in text.splitlines():
        if not line.startswith(MLLOG_PREFIX):
            continue
        try:
            entry = json.loads(line[len(MLLOG_PREFIX):])
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted run
        key, value = entry.get("key"), entry.get("value")
        values[key] = value
        metadata = entry.get("metadata") or {}
        if metadata.get("is_error"):
            errors.append(f"{key}: {value}")
        elif metadata.get("is_warning"):
            warnings.append(f"{key}: {value}")
    return LoadGenLog(values, tuple(errors), tuple(warnings))


def read_detail_log(output_dir: Path) -> LoadGenLog:
    path = output_dir / "mlperf_log_detail.txt"
    return parse_detail_log(path.read_text(encoding="utf-8", errors="replace")) if path.exists() \
        else LoadGenLog({}, ("mlperf_log_detail.txt was not written",))


def _ms(value: object) -> float | None:
    return round(float(value) / 1e6, 4) if isinstance(value, (int, float)) else None


def loadgen_summary(log: LoadGenLog) -> dict:
    """The `loadgen` section of results.json."""
    values = log.values
    # LoadGen logs the token latency limits in every scenario; only Server (and Interactive,
    # which is Server to LoadGen) is judged by them.
    judged_by_latency = values.get("effective_scenario") == "Server"
    tokens_per_second = next((values[k] for k in TOKENS_PER_SECOND_KEYS if k in values), None)
    return {
        "result": values.get("result_validity"),
        "tokens_per_second": tokens_per_second,
        "samples_per_second": values.get("result_samples_per_second",
                                         values.get("result_completed_samples_per_sec")),
        "ttft_ms": {name: _ms(values.get(f"result_first_token_{pct}_percentile_latency_ns"))
                    for name, pct in PERCENTILES.items()},
        "tpot_ms": {name: _ms(values.get(f"result_time_per_output_token_{pct}_percentile_ns"))
                    for name, pct in PERCENTILES.items()},
        "latency_ms": {name: _ms(values.get(f"result_{pct}_percentile_latency_ns"))
                       for name, pct in PERCENTILES.items()},
        "ttft_limit_ms": _ms(values.get("requested_server_ttft_latency"))
        if judged_by_latency else None,
        "tpot_limit_ms": _ms(values.get("requested_server_tpot_latency"))
        if judged_by_latency else None,
        "min_duration_met": values.get("result_min_duration_met"),
        "min_queries_met": values.get("result_min_queries_met"),
        "early_stopping_met": values.get("early_stopping_met"),
        "perf_constraints_met": values.get("result_perf_constraints_met"),
        "invalid_reason": values.get("result_invalid_reason"),
        "query_count": values.get("result_query_count"),
        "errors": list(log.errors),
        "warnings": list(log.warnings),
    }
