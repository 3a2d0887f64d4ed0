"""A lean HTTP/1.1 client for streamed responses: the measured requests' only transport.

Every read is handled inside the protocol's `data_received`, where it is stamped with the clock
before anything else and fed to httptools (llhttp, the parser uvicorn uses), whose callbacks hand
the de-chunked body to the request's `ResponseSink` at once. No coroutine wakes up per read and
nothing is copied into an intermediate stream buffer: the request's task sleeps until the
response is complete. Against a busy server a read is one token, so per read there is only the
stamp, the parser and one call into the sink (a response nobody asked for is caught when it
begins, not checked on every read). This is where a general client spends most of its time per
token, and why the client does not use one here (see bench/bench_capacity.py and
bench/bench_read_path.py for the figures).

Until a response's first token, reads are taken differently where the kernel can stamp them
(plain TCP on Linux): the transport stops reading, and a `recvmsg` on a duplicate of its socket
takes each read with the time the kernel received its last packet (`SO_TIMESTAMPNS`). The first
byte and the first token, which TTFT is computed from, are then stamped when they arrived, not
when a busy event loop got round to them: at 256 streams a read can wait behind a few hundred
others. That costs a few system calls per request (the socket duplicated, the reader moved and
back), not per token. From the first token on, reads are the transport's again and stamped in
its callback: a `recvmsg` costs more than a plain read (about 3 us here), and TPOT, a mean over
the whole answer, is hardly moved by the wait of its last read.
The kernel stamps with the wall clock; each stamp is put on the monotonic clock with the offset
between the two taken as the read is handled (the wall clock first, so that a pause between the
two readings can only make the stamp late, never early), and is used only if it falls between
the request's write and that moment (a step of the wall clock in between is caught by it).
Linux stamps packets only while some socket of the machine asks for it, and switches that on a
moment after the first one asks (from a work queue): each process keeps one such socket open and
counts on kernel stamps only once a loopback read of its own has come stamped.

Connections are kept alive and reused, most recently used first, and never after they have been
idle for `keepalive` seconds (a server closing an idle connection as a request is written into
it is a failure the user did not cause).
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import ssl
import struct
import sys
import time
from dataclasses import dataclass
from functools import cache
from typing import Protocol
from urllib.parse import urlsplit

import httptools

USER_AGENT = "client-sut"
_clock = time.perf_counter_ns
_wall_clock = time.time_ns

# Linux's SO_TIMESTAMPNS, also the type of the control message it adds (the socket module does
# not name it); its value and the 64-bit timespec it carries hold on these machines.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_STAMPED_READ_BYTES = 65536
_CONTROL_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


class ResponseSink(Protocol):
    """Where a response goes as it arrives. Exceptions raised here end the exchange with them."""

    def on_headers(self, now_ns: int, status: int, content_type: str) -> None: ...

    def on_body(self, now_ns: int, data: bytes) -> None: ...

    # True once the response's first token has arrived: later reads need no kernel stamp.
    first_reported: bool


class ConnectionLost(Exception):
    """The connection closed or broke before the response was complete."""


class MalformedResponse(Exception):
    """Bytes that are not HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an endpoint's requests go: its address, TLS and the path its API lives under."""

    host: str
    port: int
    tls: bool
    base_path: str
    host_header: str

    @classmethod
    def from_url(cls, url: str) -> Origin:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        host = parts.hostname or ""
        return cls(host, port, tls, parts.path.rstrip("/"), parts.netloc.rpartition("@")[2])


def client_ssl_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    """True: the system's trust store; False: no verification (--insecure); or a given context."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


_STAMPED_PROBE_S = 1.0  # how long a process waits for the kernel's stamping to be switched on
_stamping_kept_on: list[socket.socket] = []


@cache
def kernel_stamps_supported() -> bool:
    """Whether the kernel stamps this process's TCP reads (found out once per process). A socket
    that asks for stamps is kept open for the process's life: while none is open the kernel
    switches stamping off, and on again only a moment after the next one asks, which would leave
    the first reads of a run unstamped (module docstring)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        return False
    try:
        keeper = socket.socket()
        keeper.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    _stamping_kept_on.append(keeper)
    deadline = time.monotonic() + _STAMPED_PROBE_S
    while time.monotonic() < deadline:
        if _loopback_read_stamped():
            return True
    return False


def _loopback_read_stamped() -> bool:
    """Whether one byte sent over a fresh loopback connection is read with the kernel's stamp."""
    try:
        with socket.create_server(("127.0.0.1", 0)) as listener, \
                socket.create_connection(listener.getsockname(), timeout=1.0) as reader:
            reader.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            sender, _ = listener.accept()
            with sender:
                sender.sendall(b"x")
                _, control, _, _ = reader.recvmsg(1, _CONTROL_BYTES)
    except OSError:
        return False
    return any(level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS
               for level, kind, _ in control)


def kernel_stamped(url: str) -> bool:
    """Whether the reads up to a response's first token from this endpoint are stamped by the
    kernel (else in the transport's callback). Under TLS the bytes on the socket are records
    only the transport can decrypt."""
    return not Origin.from_url(url).tls and kernel_stamps_supported()


def _arrival_ns(control: list[tuple[int, int, bytes]], read_wall_ns: int, read_ns: int,
                written_ns: int) -> int:
    """When the kernel received the read's last packet, on the monotonic clock (`read_wall_ns`
    and `read_ns`: the read's time on the wall clock, then on the monotonic one); `read_ns` where
    it gave no stamp, or one outside [the request's write, the read]."""
    for level, kind, data in control:
        if kind == _SO_TIMESTAMPNS and level == socket.SOL_SOCKET and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            arrived_ns = seconds * 1_000_000_000 + nanoseconds - read_wall_ns + read_ns
            if written_ns <= arrived_ns <= read_ns:
                return arrived_ns
    return read_ns


# A kept-alive connection the server closes within this long of a response was closed because
# of it (servers that keep connections alive close idle ones after seconds: vLLM 5 s).
CLOSED_SOON_S = 0.5


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one exchange at a time."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.exchanges = 0  # requests written on it: past one, it was kept alive and reused
        self._sink: ResponseSink | None = None
        self._done: asyncio.Future | None = None
        self._now_ns = 0
        self._content_type = ""
        self._sized = False  # Content-Length or chunked: the body ends by itself
        self._delimited_by_close = False
        self._stampable: socket.socket | None = None  # its socket, once it stamps its packets
        self._stamped: socket.socket | None = None  # the reading socket until the first token
        self._written_ns = 0

    @property
    def kernel_stamps(self) -> bool:
        return self._stampable is not None

    def enable_kernel_stamps(self) -> None:
        """Has the kernel stamp the packets this connection receives; where it refuses, every
        read is stamped in the transport's callback."""
        transport_socket = self.transport.get_extra_info("socket")
        try:
            transport_socket.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            return
        self._stampable = transport_socket

    # --- the exchange ----------------------------------------------------------------------------

    def exchange(self, request: bytes, sink: ResponseSink, written_ns: int) -> asyncio.Future:
        """Writes the request (in one write: one system call); the future completes when the
        whole response has arrived. `written_ns`: the caller's stamp of this write, before it."""
        self._sink = sink
        self._done = self._pool.loop.create_future()
        self._content_type = ""
        self._sized = False
        self._delimited_by_close = False
        self._written_ns = written_ns
        self.exchanges += 1
        self.transport.write(request)
        if self.kernel_stamps and not self.transport.is_closing():
            self._start_stamped_reads()
        return self._done

    def abort(self) -> None:
        """Drops the connection, mid-exchange or idle (a timeout, an interrupted run)."""
        self._stop_stamped_reads()
        done, self._sink, self._done = self._done, None, None
        if done is not None and not done.done():
            done.cancel()
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _finish(self, error: BaseException | None) -> None:
        self._stop_stamped_reads()
        done, self._sink, self._done = self._done, None, None
        if error is not None:
            self.abort()
        if done is not None and not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    # --- reads stamped by the kernel, until the first token (module docstring) ------------------

    def _start_stamped_reads(self) -> None:
        original = self._stampable
        try:  # where this fails (out of descriptors), this response is stamped in the callback
            stamped = socket.socket(original.family, original.type, 0, os.dup(original.fileno()))
        except OSError:
            return
        try:
            self._pool.loop.add_reader(stamped.fileno(), self._stamped_read)
        except (OSError, RuntimeError):
            stamped.close()
            return
        self.transport.pause_reading()  # nothing is read in between: this is one callback
        self._stamped = stamped

    def _stop_stamped_reads(self) -> None:
        stamped, self._stamped = self._stamped, None
        if stamped is None:
            return
        self._pool.loop.remove_reader(stamped.fileno())
        stamped.close()  # the duplicate only: the connection's socket stays open
        if not self.closed:
            self.transport.resume_reading()

    def _stamped_read(self) -> None:
        try:
            data, control, _, _ = self._stamped.recvmsg(_STAMPED_READ_BYTES, _CONTROL_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._finish(ConnectionLost(f"connection closed mid-response: {exc}"))
            return
        read_wall_ns = _wall_clock()
        read_ns = _clock()
        if not data:  # the server closed: the transport finds out, as it would have
            self._stop_stamped_reads()
            return
        self._now_ns = _arrival_ns(control, read_wall_ns, read_ns, self._written_ns)
        self._feed(data)
        if self._stamped is not None and self._sink.first_reported:  # else finished: stopped
            self._stop_stamped_reads()

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        # Per read only this: the stamp, before anything else touches the bytes, and the parser.
        self._now_ns = _clock()
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # raised by a callback: its verdict
            self._finish(exc.__cause__ or exc.__context__ or exc)
        except httptools.HttpParserError as exc:
            self._finish(MalformedResponse(f"malformed HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if (self._done is None and exc is None and not self.closed and self.exchanges
                and time.monotonic() - self.idle_since < CLOSED_SOON_S):
            # The server closed it just after a response, though it said keep-alive.
            self._pool.closes_after_response = True
        self.closed = True
        self._stop_stamped_reads()
        self._pool.forget(self)
        if self._done is None:
            return
        if self._delimited_by_close and exc is None:  # a body that ends when the server closes
            self._finish(None)
        else:
            self._finish(ConnectionLost(f"connection closed mid-response"
                                        f"{f': {exc}' if exc else ''}"))

    # --- httptools callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._sink is None:  # nobody asked: the connection cannot be trusted (it is dropped)
            raise MalformedResponse("a response to no request")

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self._content_type = value.decode("latin-1").split(";", 1)[0].strip().lower()
        elif name in (b"content-length", b"transfer-encoding"):
            self._sized = True

    def on_headers_complete(self) -> None:
        # Neither chunked nor sized: the body runs until the server closes (HTTP/1.0 style).
        self._delimited_by_close = not self._sized
        self._sink.on_headers(self._now_ns, self._parser.get_status_code(), self._content_type)

    def on_body(self, body: bytes) -> None:
        self._sink.on_body(self._now_ns, body)

    def on_message_complete(self) -> None:
        reusable = (self._parser.should_keep_alive() and not self.closed
                    and not self._pool.closes_after_response)
        self._finish(None)
        if reusable:
            self._pool.release(self)
        elif self.transport is not None:
            self.closed = True  # closed by us: not a server closing it
            self.transport.close()


class ConnectionPool:
    """The connections to one endpoint. Runs on the event loop thread only: no locks."""

    def __init__(self, url: str, *, ssl_verify: ssl.SSLContext | bool, keepalive_s: float,
                 connect_timeout_s: float, headers: dict[str, str]) -> None:
        self.origin = Origin.from_url(url)
        self.loop = asyncio.get_running_loop()
        self._ssl = client_ssl_context(ssl_verify) if self.origin.tls else None
        self.kernel_stamps = kernel_stamped(url)
        # Learnt from the server: it closes each connection after one response (llama.cpp's
        # server does, while its headers say Keep-Alive), so every request gets a new one.
        self.closes_after_response = False
        self._keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self._idle: list[Connection] = []
        self._all: set[Connection] = set()
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._header_lines = (f"Host: {self.origin.host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
                              f"Content-Type: application/json\r\n"
                              f"Accept: text/event-stream\r\n{extra}").encode("latin-1")

    def request_head(self, path: str, body_length: int) -> bytes:
        return (b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n"
                % ((self.origin.base_path + path).encode(), self._header_lines, body_length))

    def take_idle(self) -> Connection | None:
        """The most recently used idle connection still within its keep-alive, if any."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self._keepalive_s:
                return connection
            connection.abort()
        return None

    async def connect(self) -> Connection:
        origin = self.origin
        _, connection = await asyncio.wait_for(
            self.loop.create_connection(lambda: Connection(self), origin.host, origin.port,
                                        ssl=self._ssl,
                                        server_hostname=origin.host if self._ssl else None),
            self.connect_timeout_s)
        if self.kernel_stamps:
            connection.enable_kernel_stamps()
        self._all.add(connection)
        return connection

    def release(self, connection: Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def forget(self, connection: Connection) -> None:
        self._all.discard(connection)

    def close(self) -> None:
        for connection in list(self._all):
            if connection.transport is not None:
                connection.closed = True
                connection.transport.close()
        self._idle.clear()
