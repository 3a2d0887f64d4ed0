"""The nodes of one benchmark combined: sums where the nodes add up, percentiles pooled."""

from __future__ import annotations

import pytest

from client_sut.analysis.metrics import summarize_ms, ttft_ns
from client_sut.analysis.nodes import Node, combine_nodes
from tests.unit.test_noise import records


def results(scenario: str, result: str, requests: int, tokens_per_s: float) -> dict:
    return {"scenario": scenario, "loadgen": {"result": result, "tokens_per_second": tokens_per_s},
            "client": {"requests": requests, "errors": 0, "output_tokens": 16 * requests,
                       "requests_per_second": requests / 10, "ttft_ms": {"p99": 1.0},
                       "tpot_ms": {"p99": 1.0}},
            "endpoints": [{"url": f"http://node-{requests}:8000"}],
            "system": {"client_host": {"hostname": f"host-{requests}"}}}


def test_sums_where_nodes_add_up_and_percentiles_over_the_pooled_requests():
    fast, slow = records(5.0, count=100, seed=1), records(8.0, count=50, seed=2)
    nodes = [Node("a", results("Server", "VALID", 100, 300.0), fast),
             Node("b", results("Server", "INVALID", 50, 120.0), slow)]
    combined = combine_nodes(nodes)
    total = combined["combined"]
    assert (total["requests"], total["tokens_per_s"], total["requests_per_s"]) == (150, 420.0,
                                                                                   15.0)
    assert total["result"] == "INVALID"  # VALID only when every node is
    pooled = summarize_ms(t for t in map(ttft_ns, fast + slow) if t is not None)
    assert total["ttft_ms"]["p99"] == pooled["p99"]
    assert [row["host"] for row in combined["rows"]] == ["host-100", "host-50"]
    assert "pooled" in combined["how_combined"]["percentiles"]
    with pytest.raises(ValueError):
        combine_nodes([nodes[0], Node("c", results("Offline", "VALID", 10, 1.0), fast)])
