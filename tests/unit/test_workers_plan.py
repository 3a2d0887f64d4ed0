"""The worker processes' plan (cores, shares of the streams) and the messages between them."""

from __future__ import annotations


import pytest

from client_sut.measure.channel import Channel
from client_sut.measure.cores import auto_workers, plan_cores
from client_sut.measure.workers import concurrency_shares


def test_each_process_gets_a_core_of_its_own_when_there_are_enough():
    plan = plan_cores(3, [7, 4, 5, 6, 8])
    assert plan.loadgen == (4,) and plan.workers == ((5,), (6,), (7,))
    assert plan.to_json() == {"worker_processes": 3, "pinned": True,
                              "available_cores": [4, 5, 6, 7, 8], "loadgen_process_cores": [4],
                              "worker_cores": [[5], [6], [7]]}


@pytest.mark.parametrize("workers, cores", [(2, [0, 1]), (0, [0, 1, 2, 3])])
def test_nothing_is_pinned_without_a_core_per_process_or_without_workers(workers, cores):
    plan = plan_cores(workers, cores)
    assert not plan.pinned and plan.workers == ((),) * workers
    assert plan.to_json()["worker_cores"] == [None] * workers


@pytest.mark.parametrize("total, workers, shares", [
    (512, 2, [256, 256]), (10, 3, [4, 3, 3]), (3, 3, [1, 1, 1]),
])
def test_the_streams_are_split_evenly(total, workers, shares):
    assert concurrency_shares(total, workers) == shares


class _Transport:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        pass


def test_messages_arrive_whole_and_in_order_however_the_bytes_are_split():
    sender = Channel(lambda message: None, lambda exc: None)
    sender.connection_made(_Transport())
    sent = [("issue", [(1, 0), (2, 5)], 123), ("first", 1, [42], ""), ("done", 1, b"x" * 70000)]
    for message in sent:
        sender.send(message)
    stream = sender._transport.written
    for split in (1, 3, 4, 5, 1000, len(stream)):
        received = []
        receiver = Channel(received.append, lambda exc: None)
        for start in range(0, len(stream), split):
            receiver.data_received(stream[start:start + split])
        assert received == sent, split
        assert receiver._buffer == b""


def test_a_closed_channel_reports_once_and_sends_nothing():
    closed = []
    channel = Channel(lambda message: None, closed.append)
    transport = _Transport()
    channel.connection_made(transport)
    channel.connection_lost(None)
    channel.send(("first", 1, None, "text"))
    assert closed == [None] and transport.written == b""


@pytest.mark.parametrize("expected, one_core, cores, workers", [
    (10_000, 100_000, 16, 0),  # a fifth of a core: the run's own loop
    (120_000, 100_000, 16, 3),  # 2.4 loops at half a core each
    (2_000_000, 100_000, 16, 15),  # more than there are cores: every spare one
    (120_000, 100_000, 2, 0),  # needs 3, but 2 cores leave nothing to shard over
    (None, 100_000, 8, 7),  # no rate: a worker per spare core
    (None, None, 2, 0),
])
def test_auto_workers_from_the_calibrated_capacity(expected, one_core, cores, workers):
    chosen, why = auto_workers(expected, one_core, cores, 0.5)
    assert chosen == workers and why
