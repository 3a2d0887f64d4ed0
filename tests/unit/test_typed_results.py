"""sla.json and sweep.json as types: a file written before the types is still read whole, and
what the types write keeps every key and value it had."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from client_sut.errors import UsageError
from client_sut.result_files.sla import FILE_NAME as SLA_FILE
from client_sut.result_files.sla import SlaResult
from client_sut.result_files.sweep import FILE_NAME as SWEEP_FILE
from client_sut.result_files.sweep import SweepResult

DATA = Path(__file__).parent / "data"
# Written by `client-sut sla` before sla.json had types: the demo's search (start curve,
# probes, a confirmation) and a search stopped by a lost server (aborted probes).
OLD_SLA = ["sla_before_types.json", "sla_server_lost_before_types.json"]
OLD_SWEEP = "sweep_before_types.json"  # the demo's: three concurrencies and Offline


def held_in(old, new, where: str = "") -> None:
    """Every key of OLD is in NEW with the same value (NEW may have more)."""
    if isinstance(old, dict):
        for key, value in old.items():
            assert key in new, f"{where}.{key} lost"
            held_in(value, new[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert len(old) == len(new), f"{where}: {len(old)} items became {len(new)}"
        for index, (a, b) in enumerate(zip(old, new)):
            held_in(a, b, f"{where}[{index}]")
    else:
        assert old == new, f"{where}: {old!r} became {new!r}"


@pytest.mark.parametrize("name", OLD_SLA)
def test_an_sla_json_from_before_the_types_reads_and_writes_back_the_same(tmp_path, name):
    shutil.copy(DATA / name, tmp_path / SLA_FILE)
    old = json.loads((tmp_path / SLA_FILE).read_text())
    sla = SlaResult.read(tmp_path)
    sla.write(tmp_path)
    held_in(old, json.loads((tmp_path / SLA_FILE).read_text()))
    assert len(sla.probes) == len(old["probes"])


def test_the_demo_search_reads_as_its_answer():
    sla = SlaResult.from_json(json.loads((DATA / OLD_SLA[0]).read_text()))
    assert sla.confirmed and sla.confirmation is not None
    assert sla.answer_line().startswith(f"this deployment serves {sla.answer_qps:g} queries/s")
    assert sla.runs()[-1] is sla.confirmation
    assert [p.dir for p in sla.start.points][0] == "start-offline"


def test_a_search_a_lost_server_stopped_says_why():
    sla = SlaResult.from_json(json.loads((DATA / OLD_SLA[1]).read_text()))
    assert sla.aborted is not None and sla.answer_qps is None
    assert sla.answer_line().startswith(sla.aborted.reason)


def test_the_report_of_an_old_sla_folder_shows_each_probe(tmp_path):
    from client_sut.report import write_report

    shutil.copy(DATA / OLD_SLA[0], tmp_path / SLA_FILE)
    sla = SlaResult.read(tmp_path)
    page = write_report([tmp_path], tmp_path / "report").read_text()
    assert f"{sla.answer_qps:g} QPS within the limits" in page
    for probe in sla.probes:
        assert f">{probe.verdict}<" in page


def test_a_file_that_is_no_sla_json_is_one_clear_error(tmp_path):
    (tmp_path / SLA_FILE).write_text('{"scenario": "Server", "limits": "fast"}')
    with pytest.raises(UsageError, match="sla.json is no sla.json of `client-sut sla`"):
        SlaResult.read(tmp_path)


def test_a_sweep_json_from_before_the_types_reads_and_writes_back_the_same(tmp_path):
    shutil.copy(DATA / OLD_SWEEP, tmp_path / SWEEP_FILE)
    old = json.loads((tmp_path / SWEEP_FILE).read_text())
    sweep = SweepResult.read(tmp_path)
    sweep.write(tmp_path)
    held_in(old, json.loads((tmp_path / SWEEP_FILE).read_text()))
    assert old["limits"]["for"] == sweep.to_json()["limits"]["for"] == "goodput"
    assert [p.name for p in sweep.measured()] == old["plan"]["points"]
    assert set(sweep.front) == {p.name for p in sweep.points if p.on_front}


def test_the_report_and_sla_read_an_old_sweep_through_its_types(tmp_path):
    from client_sut.config import OFFICIAL_LATENCY_LIMITS, Scenario
    from client_sut.report import write_report
    from client_sut.sla.command import start_from_sweep

    shutil.copy(DATA / OLD_SWEEP, tmp_path / SWEEP_FILE)
    page = write_report([tmp_path], tmp_path / "report").read_text()
    assert "4 points measured (complete)" in page
    rate, how = start_from_sweep(tmp_path, OFFICIAL_LATENCY_LIMITS[Scenario.SERVER])
    assert rate > 0 and how.startswith(f"predicted from the sweep in {tmp_path} (4 points)")


def test_a_file_that_is_no_sweep_json_is_one_clear_error(tmp_path):
    from client_sut.sla.command import start_from_sweep

    (tmp_path / SWEEP_FILE).write_text('{"limits": {"ttft_ms": 2000, "tpot_ms": 100}, '
                                       '"points": [{"name": "c0001"}]}')  # a point with no kind
    with pytest.raises(UsageError, match="--from-sweep: .*sweep.json is no sweep.json"):
        start_from_sweep(tmp_path, None)
