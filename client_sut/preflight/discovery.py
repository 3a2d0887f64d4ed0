"""Endpoint discovery: every server to drive, found without a hand-written URL list.

Three ways to name servers, mixed freely:
- `--endpoint http://host:8000`: one URL, used as given. It may be a single server, or a router
  or Kubernetes Service in front of several: the client cannot tell, and results.json says so.
  A Service balances per *connection*, so a keep-alive client pins to whichever few pods its
  connections landed on; point at a headless Service with `dns+` instead to reach every pod.
- `--endpoint dns+http://name:8000`: every A/AAAA address `name` resolves to, each one a replica
  reached directly (a headless Kubernetes Service and a scaled compose service answer so).
- `--endpoints-file PATH`: one URL per line (`#` comments), as `server.launch --endpoints-file`
  writes them: one server per GPU.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from client_sut.config import normalise_endpoint
from client_sut.errors import UsageError
from client_sut.measure.health import check_health
from client_sut.records import Answer

DNS_PREFIX = "dns+"
# How an endpoint is reached: a replica directly, or a URL used as given (which may stand for a
# router or Service in front of several).
REPLICA = "replica"
AS_GIVEN = "as-given"
AS_GIVEN_NOTE = ("used as given: a single server, or a router or Service in front of several; "
                 "a Kubernetes Service balances per connection, so keep-alive connections pin "
                 "to a few pods: use dns+http:// with a headless Service to reach every replica")

HEALTH_TIMEOUT_S = 5.0
WAIT_POLL_S = 5.0

# host, port -> the addresses it resolves to, in the resolver's order.
Resolver = Callable[[str, int], Sequence[str]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    found_by: str  # "--endpoint", "dns:NAME" or "file:PATH"
    reached: str  # REPLICA or AS_GIVEN


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (DNS, /etc/hosts), without repeats."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve {host} ({exc.strerror}); check the name in "
                         f"--endpoint dns+...") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def _url_host(address: str) -> str:
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


def expand_dns(spec: str, resolve: Resolver) -> list[Endpoint]:
    """`dns+http://name:port[/path]` -> one endpoint per address `name` resolves to."""
    url = spec[len(DNS_PREFIX):]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        raise UsageError(f"--endpoint {spec!r} is not dns+http(s)://NAME:PORT; give e.g. "
                         f"dns+http://vllm-replicas:8000")
    addresses = resolve(parts.hostname, parts.port)
    if not addresses:
        raise UsageError(f"{parts.hostname} resolves to no address; are the servers up?")
    path = parts.path.rstrip("/")
    return [Endpoint(f"{parts.scheme}://{_url_host(a)}:{parts.port}{path}",
                     f"dns:{parts.hostname}", REPLICA) for a in addresses]


def read_endpoints_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read --endpoints-file {path} ({exc.strerror}); start the "
                         f"servers with `python -m server.launch --endpoints-file {path}`"
                         ) from None
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    urls = [normalise_endpoint(line) for line in lines if line]
    if not urls:
        raise UsageError(f"--endpoints-file {path} lists no URL (one per line)")
    return urls


def discover(endpoints: Sequence[str], endpoints_files: Sequence[Path] = (),
             resolve: Resolver = system_resolver) -> tuple[Endpoint, ...]:
    """The servers to drive, in the order given; a server named twice is a usage error.
    endpoints_files: one per launcher (each server container writes its own)."""
    found: list[Endpoint] = []
    for spec in endpoints:
        if spec.startswith(DNS_PREFIX):
            found += expand_dns(spec, resolve)
        else:
            found.append(Endpoint(spec, "--endpoint", AS_GIVEN))
    for path in endpoints_files:
        found += [Endpoint(url, f"file:{path}", REPLICA) for url in read_endpoints_file(path)]
    if not found:
        raise UsageError("no endpoint given; pass --endpoint URL (dns+http://NAME:PORT for every "
                         "address of a name) or --endpoints-file PATH")
    urls = [e.url for e in found]
    twice = sorted({url for url in urls if urls.count(url) > 1})
    if twice:
        raise UsageError(f"{', '.join(twice)} is named more than once (by --endpoint, a dns+ "
                         f"name or --endpoints-file); give each server once")
    return tuple(found)


def endpoint_origins(found: Sequence[Endpoint]) -> dict[str, dict]:
    """Per URL, how it was found and how it is reached, for results.json `endpoints`."""
    return {e.url: {"found_by": e.found_by, "reached": e.reached,
                    **({"note": AS_GIVEN_NOTE} if e.reached == AS_GIVEN else {})}
            for e in found}


def wait_for_endpoints(endpoints: Sequence[str], endpoints_files: Sequence[Path], expect: int,
                       wait_s: float, progress: Callable[[str], None]) -> tuple[Endpoint, ...]:
    """Discover until `expect` servers are found and each answers /health, or `wait_s` passes
    (a usage error then: the run would fail its endpoint checks anyway). Replicas start at
    their own pace: a name resolves to more addresses, the file appears, as they come up."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            found = discover(endpoints, endpoints_files)
            healthy = [e for e in found
                       if check_health(e.url, timeout_s=HEALTH_TIMEOUT_S).answer is Answer.ANSWERED]
            state = f"{len(healthy)} of {len(found)} servers found answer /health, {expect} expected"
            if len(healthy) == len(found) >= expect:
                progress(f"{state}: {', '.join(e.url for e in found)}")
                return found
        except UsageError as exc:  # not resolvable yet, no file yet
            state = str(exc)
        if time.monotonic() > deadline:
            raise UsageError(f"after {wait_s:g} s: {state}")
        progress(f"waiting: {state}")
        time.sleep(WAIT_POLL_S)
