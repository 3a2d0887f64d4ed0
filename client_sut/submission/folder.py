"""Reads an assembled submission folder for the extra checks (I/O only)."""

from __future__ import annotations

import json
from pathlib import Path

from client_sut.analysis.loadgen_logs import parse_detail_log
from client_sut.submission.checks import Finding, ScenarioFiles, check_scenario
from client_sut.submission.layout import Layout


def _text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None


def read_scenario(layout: Layout, scenario: str) -> ScenarioFiles:
    detail_logs = {"performance": layout.performance(scenario),
                   "accuracy": layout.accuracy(scenario),
                   "TEST06": layout.test06(scenario) / "performance" / "run_1"}
    logs = {kind: parse_detail_log(text) for kind, folder in detail_logs.items()
            if (text := _text(folder / "mlperf_log_detail.txt")) is not None}
    rows_text = _text(layout.test06(scenario) / "accuracy" / "mlperf_log_accuracy.json")
    try:
        rows = json.loads(rows_text) if rows_text is not None else None
    except json.JSONDecodeError:
        rows = None
    return ScenarioFiles(
        scenario=scenario,
        performance_summary=_text(layout.performance(scenario) / "mlperf_log_summary.txt"),
        logs=logs,
        accuracy_txt=_text(layout.accuracy(scenario) / "accuracy.txt"),
        test06_rows=rows,
        test06_verify_txt=_text(layout.test06(scenario) / "verify_accuracy.txt"))


def check_folder(layout: Layout, eos_token_id: int | None) -> list[Finding]:
    """Every extra check on every scenario the folder holds."""
    return [finding for scenario in layout.scenarios()
            for finding in check_scenario(read_scenario(layout, scenario), eos_token_id)]
