"""The short table a run prints at its end (the full figures are in results.json)."""

from __future__ import annotations

from pathlib import Path

from client_sut.accuracy.summary import accuracy_lines
from client_sut.analysis.failures import failed_requests


def fmt_number(value, digits: int = 1) -> str:
    """Thousands separated, fixed decimals; '-' for a figure that was not measured."""
    return "-" if value is None else f"{value:,.{digits}f}"


def run_summary_lines(results: dict, output_dir: Path) -> list[str]:
    loadgen, client = results["loadgen"], results["client"]
    failed = failed_requests(client, results["endpoints"])
    notes = [note for note in results["compliance_notes"] if note != failed]
    lines = [
        ("INTERRUPTED: partial results. " if results["interrupted"] else "")
        + f"{results['scenario']} {results['mode']}: "
        # Failed requests are said before LoadGen's verdict, which does not know of them.
        + (f"FAILED: {failed}; " if failed else "")
        + f"LoadGen {loadgen['result'] or '-'}"
        + (" (not compliant: " + "; ".join(notes) + ")" if notes else ""),
        f"  tokens/s    LoadGen {fmt_number(loadgen['tokens_per_second'])}   "
        f"client {fmt_number(client['output_tokens_per_second'])}",
        f"  TTFT p99 ms LoadGen {fmt_number(loadgen['ttft_ms']['p99'], 2)}   "
        f"client {fmt_number(client['ttft_ms']['p99'], 2)}{_limit(loadgen.get('ttft_limit_ms'))}",
        f"  TPOT p99 ms LoadGen {fmt_number(loadgen['tpot_ms']['p99'], 3)}   "
        f"client {fmt_number(client['tpot_ms']['p99'], 3)}{_limit(loadgen.get('tpot_limit_ms'))}",
        f"  requests {client['requests']}/{client['issued']}, errors {client['errors']}"
        + (f" {client['errors_by_kind']}" if client["errors"] else ""),
    ]
    if loadgen["errors"]:
        lines.append(f"  LoadGen logged {len(loadgen['errors'])} errors: {loadgen['errors'][0]}")
    check = results["self_check"]
    lines.append(f"  client self-check: {fmt_number(check['client_cpu_us_per_token'], 2)} us CPU "
                 f"per token, event loop busy {fmt_number(_percent(check['event_loop_busy_share']), 0)}%, "
                 f"issue lag p99 {fmt_number(check['issue_lag_ms']['p99'], 2)} ms, loop lag p99 "
                 f"{fmt_number(check['event_loop_lag_ms']['p99'], 2)} ms")
    room = client.get("headroom")
    if room:
        lines.append(f"  {room['verdict']}")
    lines += [f"  WARNING: {warning}" for warning in check["warnings"]]
    if len(results["endpoints"]) > 1:
        lines += replica_lines(results["endpoints"])
    lines += [f"  WARNING: {warning}" for warning in results.get("warnings", [])]
    if results.get("accuracy"):
        lines += accuracy_lines(results["accuracy"])
    audit = results.get("audit")
    if audit:
        lines.append(f"  {audit['test']}: {'PASSED' if audit['passed'] else 'FAILED'} "
                     f"{audit['checks']} over {audit['samples_checked']} logged samples")
    lines.append(f"  results: {output_dir / 'results.json'}")
    return lines


def replica_lines(endpoints: list[dict]) -> list[str]:
    lines = [f"  {'replica':<32} {'found by':<18} {'requests':>8} {'errors':>6} "
             f"{'TTFT p50/p99 ms':>17} {'TPOT p50/p99 ms':>17} {'tokens/s':>9}"]
    for e in endpoints:
        lines.append(
            f"  {e['url']:<32} {e.get('found_by', '-'):<18} {e['requests']:>8} {e['errors']:>6} "
            f"{fmt_number(e['ttft_ms']['p50'], 1):>8}/{fmt_number(e['ttft_ms']['p99'], 1):<8} "
            f"{fmt_number(e['tpot_ms']['p50'], 2):>8}/{fmt_number(e['tpot_ms']['p99'], 2):<8} "
            f"{fmt_number(e['output_tokens_per_second'], 0):>9}")
    return lines


def _limit(limit_ms: float | None) -> str:
    return "" if limit_ms is None else f"   limit {fmt_number(limit_ms, 0)}"


def _percent(share: float | None) -> float | None:
    return None if share is None else share * 100


def print_run_summary(results: dict, output_dir: Path) -> None:
    print("\n".join(run_summary_lines(results, output_dir)))
