"""Progress: the plain line says every figure of the live view; the server tail reads only
whole lines."""

from __future__ import annotations

import json

from client_sut.config import ProgressMode
from client_sut.observe.live import render
from client_sut.observe.progress import (
    ProgressSnapshot,
    ServerTail,
    progress_line,
)

SNAPSHOT = ProgressSnapshot(scenario="Server", elapsed_s=42.4, min_duration_s=600.0, issued=1250,
                            completed=1200, errors=3, requests_per_s=29.5, tokens_per_s=3776.0,
                            ttft_p99_ms=812.25, tpot_p99_ms=41.5, ttft_limit_ms=2000.0,
                            tpot_limit_ms=100.0, server_waiting=7.0, kv_cache_usage=0.625)


def test_the_plain_line_holds_every_figure():
    line = progress_line(SNAPSHOT)
    for text in ("Server 42 s (558 s to min duration)", "issued 1250", "done 1200",
                 "in flight 50", "29.5 req/s", "3,776 tok/s", "TTFT p99 812.2 ms (limit 2,000)",
                 "TPOT p99 41.50 ms (limit 100)", "errors 3", "server waiting 7",
                 "KV cache 62%"):
        assert text in line, text


def test_without_limits_or_server_metrics_the_line_says_less():
    bare = ProgressSnapshot(**{**json.loads(SNAPSHOT.to_json()), "ttft_limit_ms": None,
                               "ttft_p99_ms": None, "server_waiting": None,
                               "kv_cache_usage": None})
    line = progress_line(bare)
    assert "TTFT p99 -," in line and "server waiting" not in line
    assert ProgressSnapshot.from_json(bare.to_json()) == bare


def test_the_live_view_renders_a_snapshot():
    from rich.console import Console

    console = Console(width=100, record=True, color_system=None)
    console.print(render(SNAPSHOT))
    text = console.export_text()
    assert "1,250 / 1,200 / 50" in text and "812.25 ms" in text and "62.5%" in text


def test_auto_is_live_on_a_terminal_only():
    assert ProgressMode.AUTO.resolve(is_terminal=True) is ProgressMode.LIVE
    assert ProgressMode.AUTO.resolve(is_terminal=False) is ProgressMode.PLAIN
    assert ProgressMode.NONE.resolve(is_terminal=True) is ProgressMode.NONE


def test_the_server_tail_waits_for_whole_lines(tmp_path):
    path = tmp_path / "server_metrics.jsonl"
    tail = ServerTail(path)
    tail.read()  # no file yet: nothing
    assert tail.figure("waiting", sum) is None
    line = json.dumps({"source": "server", "endpoint": "a", "t_ns": 1, "rtt_ns": 1,
                       "gauges": {"waiting": 4.0, "kv_cache_usage": 0.5}})
    other = json.dumps({"source": "server", "endpoint": "b", "t_ns": 1, "rtt_ns": 1,
                        "gauges": {"waiting": 2.0, "kv_cache_usage": 0.25}})
    path.write_text(line + "\n" + other[:20])
    tail.read()
    assert tail.figure("waiting", sum) == 4.0
    with path.open("a") as out:
        out.write(other[20:] + "\n")
    tail.read()
    assert tail.figure("waiting", sum) == 6.0 and tail.figure("kv_cache_usage", max) == 0.5
