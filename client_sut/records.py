"""What one request did, as measured by the client: the unit every metric is computed from."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from enum import Enum


class ErrorKind(str, Enum):
    """Why a request failed. Each kind is counted apart in results.json."""

    CONNECT = "connect"  # could not open a connection (unreachable, TLS failure)
    REFUSED = "refused"  # nothing listens at the endpoint: a server down or restarting
    HTTP_STATUS = "http_status"  # the server answered with a non-200 status
    SERVER_ERROR_EVENT = "server_error_event"  # an error object inside the stream
    MALFORMED = "malformed"  # bytes that are not valid SSE/JSON of the dialect
    TRUNCATED = "truncated"  # the stream ended without [DONE]
    TIMEOUT = "timeout"  # a connect, first-byte, gap or total timeout passed
    DISCONNECTED = "disconnected"  # the connection broke mid-stream
    NO_TOKENS = "no_tokens"  # the stream finished but carried no output token
    CANCELLED = "cancelled"  # the run was interrupted before the request finished
    CLIENT = "client"  # a fault in the client itself (a bug: please report it)


class TokenIdSource(str, Enum):
    SERVER = "server"  # ids streamed by the server (vLLM's return_token_ids)
    RETOKENIZED = "retokenized"  # the server sent text only: ids from tokenizing that text
    # It sent ids for some tokens only (llama.cpp sends none for a token that ends inside a UTF-8
    # character): ids from tokenizing the whole text, which it sent in full.
    IDS_MISSING = "retokenized_ids_missing"
    # It left some ids out, and each one left out was recovered exactly from the bytes of the
    # text it sent and its own count of tokens per chunk (llama.cpp's timings.predicted_n).
    RECOVERED = "server_ids_recovered"
    NONE = "none"  # no output at all

    @property
    def retokenized(self) -> bool:
        return self in (TokenIdSource.RETOKENIZED, TokenIdSource.IDS_MISSING)


class Answer(str, Enum):
    """What an endpoint's health path said when asked."""

    ANSWERED = "answered"  # it answered: the server is up, however busy
    DOWN = "down"  # refused, reset, unreachable, or not ready (5xx): nobody serves there
    SLOW = "slow"  # no answer within the check's timeout: a server too busy, or hung


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One look at an endpoint's health, at t_ns on the client's clock (perf_counter_ns)."""

    endpoint: str
    t_ns: int
    answer: Answer
    detail: str  # what it said: "HTTP 200", "connection refused", "timed out after 2 s"


@dataclass(frozen=True, slots=True)
class RequestError:
    kind: ErrorKind
    message: str


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request from LoadGen's issue to its last byte. Times are perf_counter_ns values.

    `event_ns[i]` is when the read that completed event i arrived; `event_tokens[i]` is how many
    output tokens that event carried (0 for role-only, empty or usage-only events).
    """

    sample_index: int
    endpoint: str
    issue_ns: int  # LoadGen handed the sample to the client
    send_ns: int  # just before the request was written
    first_byte_ns: int | None  # response headers arrived
    end_ns: int  # the stream finished or failed
    event_ns: array = field(repr=False)  # array('q')
    event_tokens: array = field(repr=False)  # array('i')
    token_ids: array = field(repr=False)  # array('i'), the output token ids
    token_id_source: TokenIdSource
    server_completion_tokens: int | None  # usage.completion_tokens
    finish_reason: str | None
    http_status: int | None
    error: RequestError | None = None
    response_id: str | None = None  # the server's id for the completion (its logs use it)
    first_reported_ns: int | None = None  # FirstTokenComplete was called (not in Offline)
    # The client asked for a connection: as it took the request over when one was idle (just
    # before send_ns), else when the connect began.
    # A server slow to accept shows here, not as the client's own issue lag.
    connect_ns: int | None = None
    text: str = field(default="", repr=False)
    # For a stream whose ids fell short of its count: every token-bearing event's text, ids and
    # the server's running count of generated tokens (None where it gives none), in order.
    pieces: tuple[tuple[str, tuple[int, ...], int | None], ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def output_tokens(self) -> int:
        """The server's count where it gave one, else the ids we hold."""
        if self.server_completion_tokens is not None:
            return self.server_completion_tokens
        return len(self.token_ids)

    @property
    def streamed_tokens(self) -> int:
        return sum(self.event_tokens)

    def token_event_times(self) -> list[int]:
        if 0 not in self.event_tokens:  # the usual stream: every event carries tokens (a C scan)
            return list(self.event_ns)
        return [t for t, n in zip(self.event_ns, self.event_tokens) if n > 0]
