"""The scraper: a process of its own that reads each endpoint's Prometheus `/metrics` about once
a second (and the GPUs: NVML on this host, or a DCGM exporter's `/metrics`), and appends what it
read to `server_metrics.jsonl`, each line stamped on the client's clock.

A process, not a thread: parsing an exposition holds an interpreter lock for milliseconds, and
in the client's process that would be milliseconds its event loop waits. Here it costs the client
nothing but a core's share. `time.perf_counter_ns` is CLOCK_MONOTONIC on Linux, one clock for
every process of the machine, so the stamps line up with the client's own.

Lines: `{"source": "server", "endpoint", "t_ns", "rtt_ns", "gauges", "counters", "histograms"}`
(or `"error"` for a failed scrape; an endpoint answering 404 has no /metrics and is not asked
again), `{"source": "nvml"|"dcgm", "t_ns", "gpus": [...]}`, and each round, for every endpoint,
`{"source": "health", "endpoint", "t_ns", "answer", "detail"}`: whether it answered its health
path (a server that died or restarts mid-run shows there; `--no-metrics` keeps only these).

The parent starts it, waits for its first round (the window's baseline: the scraper prints
`ready`), and stops it by closing its stdin: it then scrapes once more (the window's end) and
exits. It ignores Ctrl-C: the run decides when it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from client_sut.dialect import DEFAULT_PATHS, ServerPaths
from client_sut.measure.health import check_health
from client_sut.measure.transport import client_ssl_context
from client_sut.observe.join import Scrape
from client_sut.observe.prometheus import parse_dcgm, parse_server_metrics
from client_sut.security import Credentials

SCRAPE_INTERVAL_S = 1.0
SCRAPE_TIMEOUT_S = 2.0
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
KEY_ENV = "CLIENT_SUT_SCRAPE_KEY"  # the API key reaches the scraper here, never on its argv
READY = "ready"


class _Fetcher:
    def __init__(self, credentials: Credentials) -> None:
        self._context = client_ssl_context(credentials.ssl_context())
        self._headers = credentials.headers

    def get(self, url: str) -> str:
        request = urllib.request.Request(url, headers=self._headers)
        context = self._context if url.startswith("https") else None
        with urllib.request.urlopen(request, timeout=SCRAPE_TIMEOUT_S, context=context) as answer:
            return answer.read().decode("utf-8", errors="replace")


def scrape_endpoint(fetcher: _Fetcher, endpoint: str, path: str = "/metrics") -> Scrape:
    started = time.perf_counter_ns()
    try:
        metrics = parse_server_metrics(fetcher.get(f"{endpoint}{path}"))
        error = None
    except urllib.error.HTTPError as exc:
        metrics, error = None, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # unreachable, timed out, not an exposition
        metrics, error = None, f"{type(exc).__name__}: {exc}"
    return Scrape(endpoint, started, time.perf_counter_ns() - started, metrics, error)


class _Nvml:
    """This host's GPUs through NVML: utilisation, power and memory in use."""

    def __init__(self) -> None:
        import pynvml

        self._nvml = pynvml
        pynvml.nvmlInit()
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i)
                         for i in range(pynvml.nvmlDeviceGetCount())]

    def sample(self) -> list[dict]:
        nvml = self._nvml
        return [{"index": str(i),
                 "utilization_pct": nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
                 "power_w": nvml.nvmlDeviceGetPowerUsage(handle) / 1000,
                 "memory_used_mib": nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20}
                for i, handle in enumerate(self._handles)]


def _gpu_line(source: str, sample) -> dict:
    started = time.perf_counter_ns()
    try:
        return {"source": source, "t_ns": started, "gpus": sample()}
    except Exception as exc:  # a GPU figure missing must not stop the server scrapes
        return {"source": source, "t_ns": started, "error": f"{type(exc).__name__}: {exc}"}


def health_line(endpoint: str, credentials: Credentials, path: str | None) -> dict:
    check = check_health(endpoint, credentials, path=path)
    return {"source": "health", "endpoint": endpoint, "t_ns": check.t_ns,
            "answer": check.answer.value, "detail": check.detail}


def scrape_forever(endpoints: Sequence[str], output: Path, fetcher: _Fetcher,
                   credentials: Credentials, gpu_metrics: str | None, nvml: bool,
                   metrics: bool, interval_s: float, stop: threading.Event,
                   paths: Mapping[str, ServerPaths]) -> None:
    gpus = []
    if nvml:
        gpus.append(("nvml", _Nvml().sample))
    if gpu_metrics:
        gpus.append(("dcgm", lambda: parse_dcgm(fetcher.get(gpu_metrics))))

    def paths_of(endpoint: str) -> ServerPaths:
        return paths.get(endpoint, DEFAULT_PATHS)

    # Servers whose kind has no exposition are not asked for one.
    active = [e for e in endpoints if paths_of(e).metrics] if metrics else []
    announced = False
    with output.open("a", encoding="utf-8") as out:
        while True:
            tick = time.monotonic()
            last_round = stop.is_set()
            for endpoint in list(active):
                scrape = scrape_endpoint(fetcher, endpoint, paths_of(endpoint).metrics)
                out.write(json.dumps(scrape.to_json()) + "\n")
                if scrape.error == "HTTP 404":  # no /metrics here: noted once, not asked again
                    active.remove(endpoint)
            for endpoint in endpoints:
                out.write(json.dumps(health_line(endpoint, credentials,
                                                 paths_of(endpoint).health)) + "\n")
            for source, sample in gpus:
                out.write(json.dumps(_gpu_line(source, sample)) + "\n")
            out.flush()
            if not announced:
                print(READY, flush=True)
                announced = True
            if last_round:
                return
            stop.wait(max(0.0, interval_s - (time.monotonic() - tick)))


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run ends it, after its last scrape
    parser = argparse.ArgumentParser(description="Scrape /metrics of each endpoint until stdin "
                                                 "closes.")
    parser.add_argument("endpoints", nargs="*")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=SCRAPE_INTERVAL_S)
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--ca-bundle")
    parser.add_argument("--gpu-metrics", metavar="URL")
    parser.add_argument("--nvml", action="store_true")
    parser.add_argument("--no-metrics", action="store_true", help="the health checks only")
    parser.add_argument("--paths", default="{}", metavar="JSON",
                        help="per endpoint, where its kind keeps [metrics, health] (null: none "
                             "for metrics, the default for health)")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    credentials = Credentials(os.environ.get(KEY_ENV) or None, not args.insecure,
                              Path(args.ca_bundle) if args.ca_bundle else None)
    paths = {url: ServerPaths(*where) for url, where in json.loads(args.paths).items()}
    scrape_forever(args.endpoints, args.output, _Fetcher(credentials), credentials,
                   args.gpu_metrics, args.nvml, not args.no_metrics, args.interval, stop, paths)
    return 0


class ScraperProcess:
    """The parent's handle: starts the scraper and waits for its baseline round; `stop` has it
    take the closing round and waits for it to exit."""

    def __init__(self, endpoints: Sequence[str], output: Path, credentials: Credentials, *,
                 gpu_metrics: str | None = None, nvml: bool = False, metrics: bool = True,
                 interval_s: float = SCRAPE_INTERVAL_S,
                 paths: Mapping[str, ServerPaths] | None = None) -> None:
        command = [sys.executable, "-m", "client_sut.observe.scraper", "--output", str(output),
                   "--interval", str(interval_s), *endpoints]
        if not credentials.verify_tls:
            command.append("--insecure")
        if credentials.ca_bundle is not None:
            command += ["--ca-bundle", str(credentials.ca_bundle)]
        if gpu_metrics:
            command += ["--gpu-metrics", gpu_metrics]
        if nvml:
            command.append("--nvml")
        if not metrics:
            command.append("--no-metrics")
        if paths:
            command += ["--paths", json.dumps({url: [p.metrics, p.health]
                                               for url, p in paths.items()})]
        env = {**os.environ, KEY_ENV: credentials.api_key or ""}
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=env)
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        self.ready = bool(selector.select(READY_TIMEOUT_S)) and \
            self.process.stdout.readline().strip() == READY
        selector.close()

    def stop(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(STOP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
