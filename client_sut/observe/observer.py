"""Everything that watches one run, started just before LoadGen and stopped just after it:
the scraper process (server metrics and health checks), the progress (live view process or plain
lines), and, read once at the start, what ran (`system`). At the end it joins what was scraped
to the measured window and adds `system`, per endpoint `server` and `health`, and
`server_metrics` to the results.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from client_sut.analysis.health import endpoint_health
from client_sut.analysis.metrics import NS_PER_MS
from client_sut.config import ProgressMode, RunConfig
from client_sut.dialect import ServerPaths
from client_sut.observe.join import (
    Scrape,
    Window,
    endpoint_without_metrics,
    gpu_summary,
    token_agreement,
    window_summary,
)
from client_sut.observe.live import LiveView
from client_sut.observe.progress import (
    LIVE_INTERVAL_S,
    PLAIN_INTERVAL_S,
    ProgressSampler,
    ServerTail,
    progress_line,
)
from client_sut.observe.scraper import SCRAPE_INTERVAL_S, ScraperProcess
from client_sut.observe.system import nvml_gpus, system_info
from client_sut.records import Answer, HealthCheck, RequestRecord

SERVER_METRICS_FILE = "server_metrics.jsonl"


class RunObserver:
    def __init__(self, config: RunConfig, model: str, *, min_duration_s: float,
                 limits_ms: tuple[float | None, float | None],
                 message: Callable[[str], None],
                 paths: Mapping[str, ServerPaths] | None = None) -> None:
        self._config = config
        self.paths = paths or {}  # where each endpoint's kind keeps its metrics and health
        self._min_duration_s = min_duration_s
        self._limits_ms = limits_ms
        self._message = message
        self.path = config.output_dir / SERVER_METRICS_FILE
        gpus = nvml_gpus()
        self.system = system_info(config.endpoints, model, config.credentials, gpus)
        self._nvml = bool(gpus)
        self._scraper: ScraperProcess | None = None
        self._sampler: ProgressSampler | None = None
        self._live: LiveView | None = None

    def start(self, loop: asyncio.AbstractEventLoop, bridge, loop_lags=None) -> None:
        """Scrapes once (the window's baseline) and starts the progress."""
        self.path.unlink(missing_ok=True)
        config = self._config
        # Always started: without server metrics it still checks each endpoint's health.
        self._scraper = ScraperProcess(config.endpoints, self.path, config.credentials,
                                       gpu_metrics=config.gpu_metrics, nvml=self._nvml,
                                       metrics=config.server_metrics, paths=self.paths)
        if not self._scraper.ready:
            self._message("the metrics scraper did not start in time: the run goes on "
                          "without its baseline")
        mode = config.progress.resolve(sys.stderr.isatty())
        if mode is ProgressMode.NONE:
            return
        if mode is ProgressMode.LIVE:
            self._live = LiveView()
            sink, interval = self._live.show, LIVE_INTERVAL_S
        else:
            sink, interval = (lambda s: self._message(progress_line(s))), PLAIN_INTERVAL_S
        self._sampler = ProgressSampler(
            loop, bridge, scenario=config.scenario.value, min_duration_s=self._min_duration_s,
            limits_ms=self._limits_ms, interval_s=interval, sink=sink,
            server=ServerTail(self.path), loop_lags=loop_lags)
        self._sampler.start()

    def stop(self) -> None:
        """Stops the progress, then has the scraper take its closing round."""
        if self._sampler is not None:
            self._sampler.stop()
        if self._live is not None:
            self._live.close()
        if self._scraper is not None:
            self._scraper.stop()

    def annotate(self, results: dict, records: Sequence[RequestRecord],
                 prompt_lengths: Sequence[int]) -> None:
        """Adds `system`, each endpoint's `server` figures and `health`, and `server_metrics`
        to results."""
        lines = _read_lines(self.path)
        window = Window(min((r.issue_ns for r in records), default=0),
                        max((r.end_ns for r in records), default=0))
        notes = []
        scrapes = [Scrape.from_json(line) for line in lines if line.get("source") == "server"]
        checks = [HealthCheck(line["endpoint"], line["t_ns"], Answer(line["answer"]),
                              line["detail"]) for line in lines if line.get("source") == "health"]
        for endpoint in results["endpoints"]:
            url = endpoint["url"]
            endpoint["health"] = endpoint_health([r for r in records if r.endpoint == url],
                                                 [c for c in checks if c.endpoint == url],
                                                 window.start_ns)
            mine = [s for s in scrapes if s.endpoint == url]
            summary = window_summary(mine, window)
            if summary["scraped"]:
                ok = [r for r in records if r.endpoint == endpoint["url"] and r.ok]
                summary.update(token_agreement(
                    summary, endpoint["output_tokens"],
                    sum(prompt_lengths[r.sample_index] for r in ok)))
                if summary["output_tokens_agree"] is False:
                    notes.append(f"{endpoint['url']}: the server counted "
                                 f"{summary['server_generation_tokens']} generated tokens over "
                                 f"the window, the client {summary['client_output_tokens']} "
                                 f"(another user of the server, or a count gone wrong)")
            else:
                reason = endpoint_without_metrics(mine) or "not scraped"
                summary["note"] = f"no server metrics ({reason})"
                notes.append(f"{endpoint['url']}: no server metrics ({reason})")
            endpoint["server"] = summary
        gpu_lines = [line for line in lines if line.get("source") in ("nvml", "dcgm")]
        self.system["gpus"] = _merge_gpus(self.system["gpus"], gpu_summary(gpu_lines, window))
        results["system"] = self.system
        results["server_metrics"] = {
            "file": SERVER_METRICS_FILE,
            "interval_s": SCRAPE_INTERVAL_S,
            "window_ms": [window.start_ns / NS_PER_MS, window.end_ns / NS_PER_MS],
            "scraper": "a process of its own; scrape times (t_ns) on the client's clock",
            "notes": notes,
        }


def _read_lines(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _merge_gpus(static: list[dict], sampled: list[dict]) -> list[dict]:
    """NVML's fixed facts (name, memory, driver) joined to its samples by index; DCGM's GPUs
    (another host's) as sampled."""
    by_index = {gpu["index"]: gpu for gpu in static}
    merged = [{**by_index.get(s["index"], {}), **s} if s["source"] == "nvml" else s
              for s in sampled]
    seen = {s["index"] for s in sampled if s["source"] == "nvml"}
    return merged + [gpu for gpu in static if gpu["index"] not in seen]
