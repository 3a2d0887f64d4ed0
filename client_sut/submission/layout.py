"""Where each file of a submission goes: the v6.x layout MLCommons' checker reads (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BENCHMARK = "llama3.1-8b"
CHECKER_VERSION = "v6.1"  # what mlcommons-loadgen 6.0.16+ writes (its seeds)
DIVISIONS = ("closed", "open")
RUN_KINDS = ("performance", "accuracy", "TEST06")  # the runs every scenario needs


@dataclass(frozen=True, slots=True)
class Layout:
    """`root/<division>/<submitter>/...`: root is what the checker is given as --input."""
    root: Path
    division: str
    submitter: str
    system: str

    @property
    def org(self) -> Path:
        return self.root / self.division / self.submitter

    @property
    def system_json(self) -> Path:
        return self.org / "systems" / f"{self.system}.json"

    @property
    def src(self) -> Path:
        return self.org / "src"

    def scenario(self, scenario: str) -> Path:
        return self.org / "results" / self.system / BENCHMARK / scenario

    def performance(self, scenario: str) -> Path:
        return self.scenario(scenario) / "performance" / "run_1"

    def accuracy(self, scenario: str) -> Path:
        return self.scenario(scenario) / "accuracy"

    def test06(self, scenario: str) -> Path:
        return self.scenario(scenario) / "TEST06"

    def scenarios(self) -> list[str]:
        parent = self.scenario("x").parent
        return sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []


def run_dir(runs: Path, scenario: str, kind: str) -> Path:
    """Where the runs a submission is made from live: `runs/<Scenario>/<kind>/`."""
    return runs / scenario / kind
