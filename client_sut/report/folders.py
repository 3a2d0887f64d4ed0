"""Reading the folders a report is made of: a run's (`results.json`, `requests.jsonl`,
`server_metrics.jsonl`), an sla search's (`sla.json` and each probe's run folder) or a sweep's
(`sweep.json`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from client_sut.errors import UsageError
from client_sut.observe.observer import SERVER_METRICS_FILE
from client_sut.records import RequestRecord
from client_sut.requests_file import read_requests
from client_sut.result_files.sla import SlaResult
from client_sut.result_files.sweep import SweepResult


@dataclass(frozen=True)
class RunFolder:
    path: Path
    results: dict
    records: list[RequestRecord]
    scrapes: list[dict]  # server_metrics.jsonl lines; none where nothing was scraped

    @property
    def label(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class SlaFolder:
    path: Path
    sla: SlaResult
    probe_tokens_per_s: dict[str, float | None]  # probe dir -> its tokens/s

    @property
    def label(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class SweepFolder:
    path: Path
    sweep: SweepResult

    @property
    def label(self) -> str:
        return self.path.name


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path} ({exc})") from None


def read_run(path: Path) -> RunFolder:
    requests = path / "requests.jsonl"
    scrapes = path / SERVER_METRICS_FILE
    return RunFolder(
        path, _json(path / "results.json"),
        read_requests(requests) if requests.is_file() else [],
        [json.loads(line) for line in scrapes.read_text(encoding="utf-8").splitlines()
         if line.strip()] if scrapes.is_file() else [])


def _tokens_per_s(run_dir: Path) -> float | None:
    path = run_dir / "results.json"
    if not path.is_file():
        return None
    results = _json(path)
    return results["loadgen"].get("tokens_per_second") or \
        results["client"].get("output_tokens_per_second")


def read_sla(path: Path) -> SlaFolder:
    sla = SlaResult.read(path)
    return SlaFolder(path, sla, {p.dir: _tokens_per_s(path / p.dir) for p in sla.runs() if p.dir})


def read_folder(path: Path) -> RunFolder | SlaFolder | SweepFolder:
    if (path / "sla.json").is_file():
        return read_sla(path)
    if (path / "sweep.json").is_file():
        return SweepFolder(path, SweepResult.read(path))
    if (path / "results.json").is_file():
        return read_run(path)
    raise UsageError(f"{path} holds no results.json (a run), sla.json (an sla search) or "
                     f"sweep.json (a sweep); give the folder `client-sut run`, `sla` or `sweep` "
                     f"wrote")
