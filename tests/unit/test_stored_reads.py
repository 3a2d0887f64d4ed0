"""Reads stored after the first token and read at the end make the same record as reading every
read as it arrives (the general path), however the bytes are split, framed or fail."""

import asyncio
import dataclasses
import json

import pytest

from client_sut.measure.stream import InFlight, StreamAccumulator, finish_request
from client_sut.measure.timeouts import Watchdog, Watched
from client_sut.measure.transport import ConnectionLost
from client_sut.request import Timeouts
from client_sut.servers.emitter import (
    DONE_EVENT,
    _event_head,
    _middle_event_template,
    _role_event,
    _token_event,
    _usage_event,
)
from tests.unit.test_stream_events import VLLM_CHAT_MIDDLE, VLLM_COMPLETION_MIDDLE

RESPONSE_ID = "cmpl-stored-1"


class ReadAtOnce(StreamAccumulator):
    """The reference: every read framed and decoded as it arrives, as before the first token."""

    __slots__ = ()

    def on_body(self, now_ns: int, data: bytes) -> None:
        self.watched.last_ns = now_ns
        self._read(now_ns, data)


def emitter_events(kind: str, tokens: int = 6, per_event: int = 1, text_only: bool = False,
                   finish: str | None = "length") -> list[bytes]:
    """A whole stream as the emitter (vLLM 0.32's dialect) frames it, one entry per event."""
    head = _event_head(kind, RESPONSE_ID, "m")
    middle = _middle_event_template(head, kind)
    events = [_role_event(head)] if kind == "chat" else []
    for n, first in enumerate(range(0, tokens, per_event)):
        group = list(range(100 + first, 100 + min(tokens, first + per_event)))
        text = "".join(f" t{i}" for i in group)
        last = first + per_event >= tokens
        if 0 < n and not last and not text_only:
            events.append(middle % (text.encode(), b",".join(b"%d" % i for i in group)))
        else:
            events.append(_token_event(head, kind, text, None if text_only else group,
                                       finish if last else None, b"[1,2]" if n == 0 else b"null"))
    return [*events, _usage_event(RESPONSE_ID, "m", 2, tokens), DONE_EVENT]


def one_per_read(events: list[bytes]) -> list[bytes]:
    return list(events)


def split_every(size: int):
    def split(events: list[bytes]) -> list[bytes]:
        stream = b"".join(events)
        return [stream[i:i + size] for i in range(0, len(stream), size)]
    return split


def pairs(events: list[bytes]) -> list[bytes]:
    return [b"".join(events[i:i + 2]) for i in range(0, len(events), 2)]


def tail_joined(events: list[bytes]) -> list[bytes]:
    """The emitter's way: usage and [DONE] in one write."""
    return [*events[:-2], events[-2] + events[-1]]


def cut_inside_ids(at: int):
    def split(events: list[bytes]) -> list[bytes]:
        """One read holds an event and the next up to the middle of its ids: still as many reads
        as events, but the first of them does not end an event."""
        first, second = events[at], events[at + 1]
        cut = second.rindex(b"]}]}") - 1
        return [*events[:at], first + second[:cut], second[cut:], *events[at + 2:]]
    return split


def nul_inside(events: list[bytes]) -> list[bytes]:
    """A NUL byte and the start of the next event end one read, whose last bytes come alone: the
    SSE framing takes no event from a block that starts with NUL."""
    first, second = events[2], events[3]
    return [*events[:2], first + b"\x00" + second[:-6], second[-6:], *events[4:]]


def event_and_start_of_next(events: list[bytes]) -> list[bytes]:
    """A read holds a whole event without ids and then the next one up to the middle of its ids;
    the next read ends that event (and is followed only by the stream's tail)."""
    head = _event_head("completions", RESPONSE_ID, "m")
    plain = b'data: {"choices":[{"index":0,"x":[1]}]}\n\n'
    long_ids = _middle_event_template(head, "completions") % (b"y", b"1234567890")
    cut = long_ids.rindex(b"]}]}") - 2
    return [*events[:-3], plain + long_ids[:cut], long_ids[cut:], *events[-3:]]


def crlf(events: list[bytes]) -> list[bytes]:
    return [event.replace(b"\n", b"\r\n") for event in events]


def with_comments(events: list[bytes]) -> list[bytes]:
    return [event if i % 3 else b": keep-alive\n\n" + event for i, event in enumerate(events)]


def multi_line_data(events: list[bytes]) -> list[bytes]:
    """The third event's JSON broken over two data lines (joined with a newline: still JSON)."""
    return [event.replace(b',"choices"', b'\ndata: ,"choices"', 1) if i == 2 else event
            for i, event in enumerate(events)]


def replace_event(index: int, event: bytes):
    def change(events: list[bytes]) -> list[bytes]:
        return [event if i == index else e for i, e in enumerate(events)]
    return change


def drop_last(count: int):
    def change(events: list[bytes]) -> list[bytes]:
        return events[:-count]
    return change


def insert_event(index: int, event: bytes):
    def change(events: list[bytes]) -> list[bytes]:
        return [*events[:index], event, *events[index:]]
    return change


ERROR_EVENT = b'data: {"error":{"message":"boom","type":"InternalServerError","code":500}}\n\n'
VLLM_ERROR_EVENT = b'data: {"object":"error","message":"engine dead","type":"x","code":500}\n\n'
MIDDLE_WITH_FINISH = VLLM_COMPLETION_MIDDLE.replace(b'"finish_reason":null',
                                                    b'"finish_reason":"stop"')
MIDDLE_WITH_USAGE = VLLM_COMPLETION_MIDDLE[:-3] + b',"usage":{"completion_tokens":3}}\n\n'
MIDDLE_WITH_EMPTY_IDS = VLLM_COMPLETION_MIDDLE.replace(b"[3084]", b"[]")
MIDDLE_WITH_BAD_IDS = VLLM_COMPLETION_MIDDLE.replace(b"[3084]", b"[30,,84]")
MIDDLE_WITH_TWO_CHOICES = VLLM_COMPLETION_MIDDLE.replace(
    b'"choices":[', b'"choices":[{"index":1,"text":"x","finish_reason":null,"token_ids":[5]},')
MIDDLE_ERROR_BEFORE_CHOICES = VLLM_COMPLETION_MIDDLE.replace(
    b'"choices"', b'"error":{"message":"first"},"choices"')
# A data line with no ids, then a line that is not data and looks like ids: the SSE framing drops
# the second line, so the event carries no token.
FIELD_AFTER_DATA = (b'data: {"id":"x","choices":[{"index":0,"text":"","finish_reason":null}]}'
                    b'\nid: "token_ids":[5]}]}\n\n')

def middle_event(kind: str, text: bytes, ids: bytes) -> bytes:
    return _middle_event_template(_event_head(kind, RESPONSE_ID, "m"), kind) % (text, ids)


COMPLETIONS = emitter_events("completions")
LONG = emitter_events("completions", 60)
CHAT = emitter_events("chat")
CASES = {
    "completions, one event per read": (COMPLETIONS, one_per_read),
    "chat, one event per read": (CHAT, one_per_read),
    "usage and [DONE] in one read": (COMPLETIONS, tail_joined),
    "two events per read": (CHAT, pairs),
    "split every 7 bytes": (COMPLETIONS, split_every(7)),
    "split every 100 bytes": (CHAT, split_every(100)),
    "all in one read": (COMPLETIONS, split_every(1 << 20)),
    "a read ends inside the ids": (COMPLETIONS, cut_inside_ids(2)),
    # long enough to be read in batches where it cannot be read at once
    "a long stream with a read ending inside the ids": (LONG, cut_inside_ids(20)),
    "a long stream with a read ending inside the ids at a batch's end": (LONG, cut_inside_ids(16)),
    "a long stream with an error event": (LONG, insert_event(30, ERROR_EVENT)),
    "a long stream with two events in a read": (LONG, lambda events: [
        *events[:25], events[25] + events[26], *events[27:]]),
    "a NUL byte inside a read": (COMPLETIONS, nul_inside),
    "an event and the start of the next in one read": (COMPLETIONS, event_and_start_of_next),
    "no data field in the first stored read": (COMPLETIONS,
                                               replace_event(1, COMPLETIONS[1][len(b"data: "):])),
    "a block with no data field": (COMPLETIONS, replace_event(3, COMPLETIONS[3][len(b"data: "):])),
    "CRLF": (CHAT, crlf),
    "comments": (COMPLETIONS, with_comments),
    "multi-line data": (COMPLETIONS, multi_line_data),
    "several tokens per event": (emitter_events("completions", 9, 3), one_per_read),
    "text-only server": (emitter_events("chat", text_only=True), one_per_read),
    "vLLM's captured completion chunks": (COMPLETIONS, replace_event(3, VLLM_COMPLETION_MIDDLE)),
    "vLLM's captured chat chunks": (CHAT, replace_event(3, VLLM_CHAT_MIDDLE)),
    # the last chunk says nothing to override these
    "a finish reason mid-stream": (emitter_events("completions", finish=None),
                                   replace_event(2, MIDDLE_WITH_FINISH)),
    "usage mid-stream": (emitter_events("completions")[:-2] + [DONE_EVENT],
                         replace_event(2, MIDDLE_WITH_USAGE)),
    "empty ids mid-stream": (COMPLETIONS, replace_event(2, MIDDLE_WITH_EMPTY_IDS)),
    "two choices": (COMPLETIONS, replace_event(2, MIDDLE_WITH_TWO_CHOICES)),
    "malformed ids": (COMPLETIONS, replace_event(2, MIDDLE_WITH_BAD_IDS)),
    "malformed JSON": (COMPLETIONS, replace_event(3, b'data: {"choices": [oops\n\n')),
    "an error event, then the end": (COMPLETIONS, insert_event(3, ERROR_EVENT)),
    "vLLM's error object": (CHAT, insert_event(4, VLLM_ERROR_EVENT)),
    "an error key before the choices": (COMPLETIONS, replace_event(2, MIDDLE_ERROR_BEFORE_CHOICES)),
    "a field line after the data": (COMPLETIONS, replace_event(3, FIELD_AFTER_DATA)),
    "a lone CR ends a line": (COMPLETIONS,
                              replace_event(3, FIELD_AFTER_DATA.replace(b"\nid", b"\rid"))),
    "[DONE] mid-stream": (COMPLETIONS, insert_event(3, DONE_EVENT)),
    "no [DONE]": (COMPLETIONS, drop_last(1)),
    "cut inside an event": (COMPLETIONS, lambda events: split_every(50)(events)[:-3]),
    "first token only, then [DONE]": (emitter_events("completions", 1), one_per_read),
    # what the bulk read compares around each text and ids, in a long stream
    "an escaped quote in a text": (LONG, replace_event(
        20, middle_event("completions", b'say \\"hi', b"119"))),
    "an escaped quote in a chat delta": (emitter_events("chat", 60), replace_event(
        21, middle_event("chat", b'\\"', b"119"))),
    "an escaped line break and an empty text": (LONG, lambda events: replace_event(
        30, middle_event("completions", b"", b"129"))(replace_event(
            20, middle_event("completions", b"\\n", b"119"))(events))),
    "a field that changes in one chunk": (LONG, replace_event(
        20, LONG[20].replace(b'"created":0', b'"created":1'))),
    "a chunk's end twice in a read": (LONG, replace_event(20, LONG[20] + b"]}]}\n\n")),
    "a line break inside the ids": (LONG, replace_event(20, LONG[20].replace(b"[120]",
                                                                             b"[120,\n121]"))),
    "escaped backslashes before a text's quotes": (LONG, lambda events: replace_event(
        30, middle_event("completions", b'\\\\\\"', b"129"))(replace_event(
            20, middle_event("completions", b"a\\\\", b"119"))(events))),
    "a text whose closing quote is escaped": (LONG, replace_event(
        20, LONG[20].replace(b'"text":" t120"', b'"text":" t120\\"'))),
    "a text that is not closed": (LONG, replace_event(
        20, LONG[20].replace(b'"text":" t120"', b'"text":" t120'))),
}


async def record(accumulator: type[StreamAccumulator], reads: list[bytes], ended: bool):
    """The record finish_request makes when `reads` arrive (each stamped 1000 ns after the
    last) and the exchange then ends, by completing or by the connection breaking."""
    firsts = []
    watched = Watched(None, 0)
    acc = accumulator(lambda ids, text: firsts.append((ids, text)) or 7, watched)
    inflight = InFlight(watched, acc, b"")
    inflight.exchange = asyncio.get_running_loop().create_future()
    try:
        acc.on_headers(500, 200, "text/event-stream")
        for t, data in enumerate(reads, start=1):
            acc.on_body(t * 1000, data)
    except Exception as exc:  # the sink's verdict ends the exchange, as in the transport
        inflight.exchange.set_exception(exc)
    else:
        if ended:
            inflight.exchange.set_result(None)
        else:
            inflight.exchange.set_exception(ConnectionLost("connection closed mid-response"))
    made = await finish_request(inflight, None, "http://127.0.0.1:1", sample_index=3, issue_ns=1,
                                watchdog=Watchdog(Timeouts()))
    return dataclasses.replace(made, end_ns=0), firsts


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("ended", [True, False], ids=["complete", "connection lost"])
def test_stored_reads_make_the_record_reading_at_once_makes(name, ended):
    events, split = CASES[name]
    reads = split(events)

    async def both():
        return (await record(ReadAtOnce, reads, ended),
                await record(StreamAccumulator, reads, ended))

    (reference, reference_firsts), (stored, firsts) = asyncio.run(both())
    assert stored == reference
    assert firsts == reference_firsts and len(firsts) <= 1


@pytest.mark.parametrize("events", [COMPLETIONS, CHAT, emitter_events("chat", 9, 3)])
def test_plain_token_chunks_are_read_in_bulk(events):
    acc = StreamAccumulator(lambda ids, text: None, Watched(None, 0))
    acc.on_headers(0, 200, "text/event-stream")
    for t, data in enumerate(events):
        acc.on_body(t, data)
    middles = sum(1 for event in events if b'"finish_reason":null' in event
                  and b'"token_ids"' in event) - 1  # the first token was read at once
    assert acc.read_stored() == middles > 0
    assert acc.done and acc.finish_reason == "length"


def test_texts_with_escaped_quotes_and_backslashes_are_read_in_bulk():
    texts = [b'\\"', b"a\\\\", b'\\\\\\"', b"\\n", b""]
    events = LONG[:10] + [middle_event("completions", text, b"%d" % (200 + i))
                          for i, text in enumerate(texts)] + LONG[10:]
    acc = StreamAccumulator(lambda ids, text: None, Watched(None, 0))
    acc.on_headers(0, 200, "text/event-stream")
    for t, data in enumerate(events):
        acc.on_body(t, data)
    assert acc.read_stored() == len(LONG) - 4 + len(texts)


def test_a_read_split_in_a_long_stream_spoils_only_its_batch():
    reads = cut_inside_ids(20)(LONG)
    acc = StreamAccumulator(lambda ids, text: None, Watched(None, 0))
    acc.on_headers(0, 200, "text/event-stream")
    for t, data in enumerate(reads):
        acc.on_body(t, data)
    middles = len(LONG) - 4  # neither the first token, the last, usage nor [DONE]
    assert middles - 2 * 16 <= acc.read_stored() < middles
    assert list(acc.token_ids) == list(range(100, 160)) and acc.done


def test_a_bulk_read_keeps_every_reads_stamp_and_ids_in_order():
    head = _event_head("completions", RESPONSE_ID, "m")
    middle = _middle_event_template(head, "completions")
    acc = StreamAccumulator(lambda ids, text: None, Watched(None, 0))
    acc.on_headers(0, 200, "text/event-stream")
    acc.on_body(10, _token_event(head, "completions", "a", [1], None))
    for t, ids in [(20, b"2"), (30, b"3,4"), (40, b"5")]:
        acc.on_body(t, middle % (b"x", ids))
    assert acc.read_stored() == 3
    assert list(acc.event_ns) == [10, 20, 30, 40] and list(acc.event_tokens) == [1, 1, 2, 1]
    assert list(acc.token_ids) == [1, 2, 3, 4, 5]


def test_reads_are_stored_only_after_the_first_token():
    acc = StreamAccumulator(lambda ids, text: None, Watched(None, 0))
    acc.on_headers(0, 200, "text/event-stream")
    for t, data in enumerate(CHAT[:3]):  # role, first token, one more
        acc.on_body(t, data)
    assert acc.first_reported and acc.stored == [CHAT[2]] and list(acc.stored_ns) == [2]
    assert acc.watched.last_ns == 2  # the watchdog still sees every read
    assert json.loads(CHAT[1][6:])["choices"][0]["token_ids"] == list(acc.token_ids)
