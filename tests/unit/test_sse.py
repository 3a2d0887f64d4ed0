"""SSE framing off raw bytes, as servers actually split their writes."""

from client_sut.measure.sse import SseScanner


def feed_all(reads: list[bytes]) -> list[list[bytes]]:
    scanner = SseScanner()
    return [scanner.feed(read) for read in reads]


def test_one_event_per_read():
    assert feed_all([b"data: {\"a\":1}\n\n"]) == [[b'{"a":1}']]


def test_event_split_across_reads_belongs_to_the_read_that_completes_it():
    assert feed_all([b"data: {\"a\"", b":1}\n", b"\n"]) == [[], [], [b'{"a":1}']]


def test_many_events_in_one_read():
    read = b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
    assert feed_all([read]) == [[b"1", b"2", b"[DONE]"]]


def test_trailing_partial_event_is_held_back():
    scanner = SseScanner()
    assert scanner.feed(b"data: 1\n\ndata: 2") == [b"1"]
    assert scanner.pending == b"data: 2"
    assert scanner.feed(b"\n\n") == [b"2"]


def test_comments_and_keepalives_are_not_events():
    assert feed_all([b": keep-alive\n\n:\n\ndata: x\n\n"]) == [[b"x"]]


def test_fields_other_than_data_are_ignored():
    assert feed_all([b"event: message\nid: 7\nretry: 10\ndata: x\n\n"]) == [[b"x"]]


def test_multiple_data_lines_join_with_newline():
    assert feed_all([b"data: a\ndata: b\n\n"]) == [[b"a\nb"]]


def test_data_without_space_after_colon():
    assert feed_all([b"data:x\n\n"]) == [[b"x"]]


def test_crlf_line_endings():
    assert feed_all([b"data: 1\r\n\r\ndata: 2\r\n\r\n"]) == [[b"1", b"2"]]


def test_crlf_split_between_reads_is_not_a_blank_line():
    # "\r" ends one read and "\n" starts the next: together one line ending, not two.
    assert feed_all([b"data: 1\r", b"\ndata: 2\r\n\r\n"]) == [[], [b"1\n2"]]


def test_done_marker_is_passed_through():
    assert feed_all([b"data: [DONE]\n\n"]) == [[b"[DONE]"]]
