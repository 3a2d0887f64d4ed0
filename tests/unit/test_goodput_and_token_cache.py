"""Goodput from the records, and the tokenized-prompt cache the runs of a search share."""

from __future__ import annotations

from dataclasses import replace

from client_sut.analysis.metrics import goodput
from client_sut.data.token_cache import cache_key, cached_prompt_ids
from client_sut.records import ErrorKind
from tests.unit.test_sla_logic import record


def test_goodput_counts_requests_within_both_limits_and_not_failed():
    records = [record(0, 50, 200),  # good: TTFT 50 ms, TPOT 10 ms
               record(0, 150, 300),  # over TTFT
               record(0, 10, 10 + 15 * 20),  # over TPOT (20 ms)
               record(0, None, 5, error=ErrorKind.TIMEOUT)]
    result = goodput(records, ttft_limit_ms=100.0, tpot_limit_ms=15.0)
    assert result["requests_within_limits"] == 1
    assert result["share"] == 0.25
    assert (result["over_ttft"], result["over_tpot"], result["errors"]) == (1, 1, 1)
    assert result["requests_per_second"] > 0
    # Offline has no latency limits: every request that did not fail counts.
    assert goodput(records, None, None)["requests_within_limits"] == 3


def test_goodput_from_the_send_leaves_out_the_wait_for_a_slot():
    # Issued at 0 by LoadGen's Offline, sent at 3 s when a slot freed, first token 100 ms later.
    waited = replace(record(0, 3100, 3300), send_ns=3_000_000_000)
    assert goodput([waited], 2000.0, 100.0)["over_ttft"] == 1  # as LoadGen judges: 3.1 s
    assert goodput([waited], 2000.0, 100.0, from_send=True)["requests_within_limits"] == 1


def test_token_cache_reuses_ids_only_for_the_same_inputs(tmp_path):
    dataset = tmp_path / "data.jsonl"
    dataset.write_text('{"article": "a", "highlights": "b"}\n')
    cache = tmp_path / "tokens.msgpack"
    calls = []

    def tokenize():
        calls.append(1)
        return [(1, 2, 3)]

    key = cache_key(str(dataset), "tok", 1, "official")
    assert cached_prompt_ids(cache, key, tokenize) == [(1, 2, 3)]
    assert cached_prompt_ids(cache, key, tokenize) == [(1, 2, 3)]
    assert len(calls) == 1
    assert cached_prompt_ids(cache, cache_key(str(dataset), "other-tok", 1, "official"), tokenize)
    assert len(calls) == 2
    assert cached_prompt_ids(cache, cache_key(str(dataset), "tok", 1, "chat"), tokenize)
    assert len(calls) == 3  # the chat format's ids are other ids
    dataset.write_text('{"article": "changed", "highlights": "b"}\n')
    assert cache_key(str(dataset), "tok", 1, "official") != key
