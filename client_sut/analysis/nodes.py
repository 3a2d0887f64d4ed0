"""One benchmark run on several nodes at once (a client and its servers per node, as MLPerf's
seeds run it), combined into the deployment's figures: pure functions.

How each figure is combined (said beside it in the report):
- requests, errors and output tokens: summed over the nodes;
- tokens/s and requests/s: summed, each node's over its own run (the nodes run at the same time,
  so the deployment serves their sum; a node that ran alone would add what it never shared);
- TTFT, TPOT and end-to-end percentiles: over every node's requests pooled, never averaged (the
  mean of two p99s is no p99 of anything);
- LoadGen's verdict: VALID only when every node's run is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from client_sut.analysis.metrics import summarize_ms, tpot_ns, ttft_ns
from client_sut.records import RequestRecord

HOW_COMBINED = {
    "requests": "summed over the nodes",
    "tokens_per_s": "summed: each node's output tokens over its own run, the nodes running at "
                    "once",
    "percentiles": "over every node's requests pooled (never an average of the nodes' "
                   "percentiles)",
    "result": "VALID only when every node's LoadGen run is",
}


@dataclass(frozen=True, slots=True)
class Node:
    """One node's run: its folder's label, its results.json and its requests."""

    label: str
    results: dict
    records: Sequence[RequestRecord]


def _tokens_per_s(results: dict) -> float:
    return (results["loadgen"].get("tokens_per_second")
            or results["client"].get("output_tokens_per_second") or 0.0)


def node_row(node: Node) -> dict:
    results, client = node.results, node.results["client"]
    return {"node": node.label,
            "host": results.get("system", {}).get("client_host", {}).get("hostname"),
            "endpoints": [e["url"] for e in results.get("endpoints", [])],
            "scenario": results["scenario"], "result": results["loadgen"].get("result"),
            "requests": client["requests"], "errors": client["errors"],
            "tokens_per_s": _tokens_per_s(results),
            "requests_per_s": client.get("requests_per_second") or 0.0,
            "ttft_p99_ms": client["ttft_ms"].get("p99"),
            "tpot_p99_ms": client["tpot_ms"].get("p99")}


def combine_nodes(nodes: Sequence[Node]) -> dict:
    """The per-node rows, the combined figures and how each was combined."""
    scenarios = {node.results["scenario"] for node in nodes}
    if len(scenarios) != 1:
        raise ValueError(f"the nodes of one benchmark run one scenario, got {sorted(scenarios)}")
    rows = [node_row(node) for node in nodes]
    ok = [r for node in nodes for r in node.records if r.ok]
    keep = ("p50", "p90", "p99")
    ttft = summarize_ms(t for t in map(ttft_ns, ok) if t is not None)
    tpot = summarize_ms(t for t in map(tpot_ns, ok) if t)
    e2e = summarize_ms(r.end_ns - r.send_ns for r in ok)
    combined = {
        "nodes": len(nodes), "scenario": scenarios.pop(),
        "requests": sum(row["requests"] for row in rows),
        "errors": sum(row["errors"] for row in rows),
        "output_tokens": sum(node.results["client"]["output_tokens"] for node in nodes),
        "tokens_per_s": round(sum(row["tokens_per_s"] for row in rows), 3),
        "requests_per_s": round(sum(row["requests_per_s"] for row in rows), 3),
        "ttft_ms": {k: ttft[k] for k in keep}, "tpot_ms": {k: tpot[k] for k in keep},
        "e2e_ms": {k: e2e[k] for k in keep},
        "result": "VALID" if all(row["result"] == "VALID" for row in rows) else "INVALID",
    }
    return {"rows": rows, "combined": combined, "how_combined": HOW_COMBINED}
