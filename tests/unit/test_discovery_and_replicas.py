"""Endpoint discovery (dns+ names, endpoints files) and the replica comparison, on pure input."""

from array import array

import pytest

from client_sut.analysis.replicas import replica_balance
from client_sut.errors import UsageError
from client_sut.preflight.discovery import (
    AS_GIVEN,
    REPLICA,
    discover,
    endpoint_origins,
    system_resolver,
)
from client_sut.records import RequestRecord, TokenIdSource

MS = 1_000_000


def resolver(table):
    return lambda host, port: table[host]


def test_dns_name_expands_to_every_address_as_replicas():
    found = discover(["dns+http://vllm:8000/"], resolve=resolver(
        {"vllm": ["10.0.0.5", "10.0.0.6", "fd00::7"]}))
    assert [e.url for e in found] == ["http://10.0.0.5:8000", "http://10.0.0.6:8000",
                                      "http://[fd00::7]:8000"]
    assert {e.reached for e in found} == {REPLICA} and found[0].found_by == "dns:vllm"


def test_plain_url_is_used_as_given_and_says_it_may_be_a_service():
    found = discover(["http://router:8000"])
    origins = endpoint_origins(found)["http://router:8000"]
    assert origins["reached"] == AS_GIVEN and "per connection" in origins["note"]


def test_endpoints_file(tmp_path):
    listing = tmp_path / "endpoints"
    listing.write_text("# written by server.launch\nhttp://gpu0:8000/v1\n\nhttp://gpu0:8001\n")
    found = discover([], [listing])
    assert [e.url for e in found] == ["http://gpu0:8000", "http://gpu0:8001"]
    assert found[0].found_by == f"file:{listing}" and found[0].reached == REPLICA
    # One file per launcher (two server containers): every server, each named by its file.
    second = tmp_path / "endpoints-2"
    second.write_text("http://node1:8000\n")
    both = discover([], [listing, second])
    assert [e.url for e in both][-1] == "http://node1:8000"
    assert both[-1].found_by == f"file:{second}"


@pytest.mark.parametrize("specs, table, message", [
    (["dns+http://vllm"], {}, "is not dns\\+http\\(s\\)://NAME:PORT"),
    (["dns+http://vllm:8000"], {"vllm": []}, "resolves to no address"),
    (["http://10.0.0.5:8000", "dns+http://vllm:8000"], {"vllm": ["10.0.0.5"]},
     "named more than once"),
    ([], {}, "no endpoint given"),
])
def test_discovery_errors(specs, table, message):
    with pytest.raises(UsageError, match=message):
        discover(specs, resolve=resolver(table))


def test_missing_endpoints_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read --endpoints-file"):
        discover([], [tmp_path / "none"])


def test_system_resolver_reads_the_hosts_file():
    assert "127.0.0.1" in system_resolver("localhost", 8000)
    with pytest.raises(UsageError, match="cannot resolve"):
        system_resolver("no-such-host.invalid", 8000)


def record(endpoint, ttft_ms, tokens=10, gap_ms=5.0):
    send = 1_000 * MS
    first = send + int(ttft_ms * MS)
    events = [first + int(i * gap_ms * MS) for i in range(tokens)]
    return RequestRecord(
        sample_index=0, endpoint=endpoint, issue_ns=send, send_ns=send, first_byte_ns=send,
        end_ns=events[-1], event_ns=array("q", events), event_tokens=array("i", [1] * tokens),
        token_ids=array("i", range(tokens)), token_id_source=TokenIdSource.SERVER,
        server_completion_tokens=tokens, finish_reason="length", http_status=200)


def test_alike_replicas_raise_no_warning():
    records = [record(url, 20 + (i % 7)) for i in range(60) for url in ("http://a", "http://b")]
    balance = replica_balance(records, ["http://a", "http://b"])
    assert balance["warnings"] == [] and not balance["requests"]["uneven"]
    assert all(row["compared"] and not row["differs"] for row in balance["ttft_ms"])


def test_slow_replica_and_uneven_shares_are_flagged():
    records = ([record("http://a", 20 + (i % 7)) for i in range(100)]
               + [record("http://b", 21 + (i % 5)) for i in range(100)]
               + [record("http://c", 60 + (i % 9)) for i in range(40)])
    balance = replica_balance(records, ["http://a", "http://b", "http://c"])
    slow = [row for row in balance["ttft_ms"] if row["differs"]]
    assert [row["url"] for row in slow] == ["http://c"] and slow[0]["ratio"] > 2
    assert balance["requests"]["uneven"]
    assert any("http://c" in w and "TTFT" in w for w in balance["warnings"])


def test_too_few_requests_are_not_compared():
    records = [record(url, 20) for url in ("http://a", "http://b") for _ in range(5)]
    balance = replica_balance(records, ["http://a", "http://b"])
    assert not any(row["compared"] for row in balance["ttft_ms"])
    assert replica_balance(records, ["http://a"]) is None
