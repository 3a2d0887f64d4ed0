"""The submission's pure parts: file formats, the system description, the extra checks."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import numpy as np
import pytest

from client_sut.analysis.loadgen_logs import LoadGenLog
from client_sut.errors import UsageError
from client_sut.submission.checker import error_lines
from client_sut.submission.checks import OFFICIAL_SEEDS, ScenarioFiles, check_scenario
from client_sut.submission.formats import (
    VIEWABLE_BYTES,
    accuracy_text,
    hash_line,
    truncated_log,
    verification_text,
)
from client_sut.submission.runs import check_run_args, plan_runs
from client_sut.submission.system import (
    MEANINGFUL_FIELDS,
    MEASUREMENT_FIELDS,
    UserDescription,
    measurements,
    read_user_description,
    system_description,
)

RESULT = {"rouge1": 38.8123, "rouge2": 15.95, "rougeL": 24.5, "rougeLsum": 35.8001,
          "gen_len": 8_100_000, "gen_num": 13_368, "passed": True}
EOS = 2


def ids_hex(ids: list[int]) -> str:
    return np.array(ids, dtype=np.int32).tobytes().hex()


def test_accuracy_txt_is_what_evaluation_py_prints():
    text = accuracy_text(RESULT)
    assert text == ("\nResults\n\n{'rouge1': '38.8123', 'rouge2': '15.95', 'rougeL': '24.5', "
                    "'rougeLsum': '35.8001', 'gen_len': 8100000, 'gen_num': 13368}\n")
    # The checker's patterns (tools/submission/submission_checker/constants.py ACC_PATTERN).
    import re
    assert re.match(r".*'rouge1':\s+'?([\d.]+)'?.*", text.splitlines()[3]).group(1) == "38.8123"
    assert re.match(r".*'gen_len':\s([\d.]+).*", text.splitlines()[3]).group(1) == "8100000"


def test_truncation_keeps_both_ends_and_hashes_the_whole_log():
    small = b'[{"qsl_idx": 0}]'
    assert truncated_log(small) == small
    big = bytes(range(256)) * 100
    cut = truncated_log(big)
    assert cut == big[:VIEWABLE_BYTES] + b"\n\n...\n\n" + big[-VIEWABLE_BYTES:]
    assert hash_line(big) == f"\nhash={hashlib.sha256(big).hexdigest()}\n"


def test_test06_verification_text():
    offline = {"passed": True, "checks": {"first_token": None, "eos": True,
                                          "sample_length": True}}
    assert verification_text(offline) == (
        "First token check pass: Skipped\nEOS check pass: True\nSample length check pass: True\n"
        "TEST06 verification complete\n")
    failed = {"passed": False, "checks": {"first_token": True, "eos": False,
                                          "sample_length": True}}
    assert verification_text(failed).endswith(
        "EOS check pass: False\nSample length check pass: True\nTEST06 verification failed\n")


def user(**system) -> UserDescription:
    return UserDescription("sys1", system, {})


def test_system_description_names_every_missing_field():
    with pytest.raises(UsageError) as error:
        system_description({"host_processor_model_name": "cpu"}, user(submitter="Org"), "open")
    message = str(error.value)
    assert "host_processor_model_name" not in message and "submitter" not in message
    assert "status" in message and "cooling" in message and "[system]" in message


def test_the_users_answers_win_and_every_required_field_is_present():
    answers = {key: f"user {key}" for key in MEANINGFUL_FIELDS}
    answers.update(status="available", system_type="datacenter", number_of_nodes=1)
    description = system_description({"operating_system": "seen", "cooling": "seen"},
                                     user(**answers), "closed")
    assert description["division"] == "closed"  # the folder's division, always
    assert description["cooling"] == "user cooling"
    assert description["number_of_nodes"] == "1" and description["hw_notes"] == ""
    with pytest.raises(UsageError, match="status 'sold'"):
        system_description({}, user(**{**answers, "status": "sold"}), "closed")


def test_measurements_need_every_field():
    with pytest.raises(UsageError, match="weight_data_types"):
        measurements({"input_data_types": "int32"},
                     UserDescription("s", {}, {"retraining": "no"}))
    full = UserDescription("s", {}, {key: "x" for key in MEASUREMENT_FIELDS})
    assert set(measurements({}, full)) == set(MEASUREMENT_FIELDS)


def test_system_file_needs_an_id(tmp_path: Path):
    path = tmp_path / "system.toml"
    path.write_text("[system]\nsubmitter = 'Org'\n")
    with pytest.raises(UsageError, match="system_id"):
        read_user_description(path)
    with pytest.raises(UsageError, match="does not exist"):
        read_user_description(tmp_path / "missing.toml")
    path.write_text("system_id = 'gpu_box'\n[system]\nsubmitter = 'Org'\n")
    assert read_user_description(path).system == {"submitter": "Org"}


def detail(scenario: str = "Server", ttft_ns: int = 2_000_000_000, tpot_ns: int = 100_000_000,
           errors: tuple[str, ...] = (), **values) -> LoadGenLog:
    base = {"effective_scenario": scenario, "effective_min_duration_ms": 600_000,
            "requested_server_ttft_latency": ttft_ns, "requested_server_tpot_latency": tpot_ns,
            **{f"effective_{k}": v for k, v in OFFICIAL_SEEDS.items()}}
    return LoadGenLog({**base, **values}, errors)


VALID_SUMMARY = "Scenario : Server\nResult is : VALID\n  Min duration satisfied : Yes\n"


def files(scenario: str = "Server", **changes) -> ScenarioFiles:
    rows = [{"qsl_idx": 0, "data": ids_hex([5, 6, EOS]), "token_data": ids_hex([5]),
             "token_count": 3}]
    base = dict(scenario=scenario, performance_summary=VALID_SUMMARY,
                logs={"performance": detail(), "accuracy": detail(), "TEST06": detail()},
                accuracy_txt=accuracy_text(RESULT) + hash_line(b"[]"), test06_rows=rows,
                test06_verify_txt=verification_text({"passed": True, "checks": {
                    "first_token": True, "eos": True, "sample_length": True}}))
    return ScenarioFiles(**{**base, **changes})


def checks_failed(scenario_files: ScenarioFiles) -> list[tuple[str, str]]:
    return [(f.check, f.message) for f in check_scenario(scenario_files, EOS)]


def test_a_clean_folder_passes_every_extra_check():
    assert checks_failed(files()) == []


def test_an_invalid_summary_is_caught_with_its_reasons():
    summary = "Result is : INVALID\n  Min duration satisfied : NO\n  Min queries satisfied : Yes\n"
    assert checks_failed(files(performance_summary=summary)) == [
        ("summary", "the performance summary says INVALID (Min duration satisfied: NO)")]


def test_an_interactive_run_with_server_limits_is_caught():
    interactive = files("Interactive")  # its logs hold the Server limits, 2000 / 100 ms
    assert checks_failed(interactive) == [
        ("latency_limits", "the run was judged by TTFT 2000 ms / TPOT 100 ms, not "
                           "Interactive's 500 / 30 ms")]
    right = files("Interactive", logs={"performance": detail(ttft_ns=500_000_000,
                                                             tpot_ns=30_000_000)})
    assert checks_failed(right) == []


def test_accuracy_txt_with_numpy_scalars_is_caught():
    numpy_print = accuracy_text(RESULT).replace("8100000", "np.int64(8100000)")
    found = checks_failed(files(accuracy_txt=numpy_print + hash_line(b"[]")))
    assert [check for check, _ in found] == ["accuracy_txt"]
    assert "np.int64" in found[0][1]
    unhashed = checks_failed(files(accuracy_txt=accuracy_text(RESULT)))
    assert unhashed == [("accuracy_txt", "accuracy.txt has no hash= line of the truncated "
                                         "accuracy log")]
    # The text parses as literals exactly when it is in evaluation.py's form.
    assert ast.literal_eval(accuracy_text(RESULT).split("\n")[3])["gen_len"] == 8_100_000


def test_one_token_answers_errors_are_named_for_their_cause():
    one_token = "error_runtime: Number of tokens need to be greater than 1"
    logs = {"performance": detail(), "accuracy": detail(errors=(one_token,) * 18),
            "TEST06": detail()}
    [(check, message)] = checks_failed(files(logs=logs))
    assert check == "loadgen_errors"
    assert message.startswith("accuracy detail log: 18 LoadGen errors 'Number of tokens need")
    assert "a single token" in message


def test_loadgen_errors_seeds_and_min_duration_in_any_log_are_caught():
    logs = {"performance": detail(effective_min_duration_ms=1000),
            "accuracy": detail(errors=("error_runtime: Multiple conf files are used",)),
            "TEST06": detail(effective_schedule_rng_seed=1)}
    assert sorted(checks_failed(files(logs=logs))) == [
        ("loadgen_errors", "accuracy detail log: LoadGen error error_runtime: Multiple conf "
                           "files are used"),
        ("min_duration", "performance run's min_duration is 1000 ms, not the official 600000"),
        ("seeds", "TEST06 run used schedule_rng_seed 1, not the official 16159082839903944936"),
    ]


def test_test06_eos_is_checked_with_an_integer_id():
    two_eos = [{"qsl_idx": 3, "data": ids_hex([7, EOS, EOS]), "token_data": ids_hex([7]),
                "token_count": 3}]
    found = checks_failed(files(test06_rows=two_eos))
    assert [check for check, _ in found] == ["TEST06"]
    assert "integer EOS id 2" in found[0][1] and "'eos': False" in found[0][1]


def test_checker_errors_are_read_from_its_log_lines():
    output = ("[2026-01-01 10:00:00,000 main.py:10 INFO] fine\n"
              "[2026-01-01 10:00:00,000 performance_check.py:318 ERROR] /x Test duration less "
              "than 600s in user config. expected=600000, found=5000\n"
              "[2026-01-01 main.py:338 ERROR] SUMMARY: submission has errors\n")
    assert error_lines(output) == (
        "/x Test duration less than 600s in user config. expected=600000, found=5000",
        "SUMMARY: submission has errors")


def test_run_options_cannot_override_what_the_submission_sets(tmp_path: Path):
    with pytest.raises(UsageError, match="--mode=accuracy, --scenario"):
        check_run_args(["--endpoint", "http://a", "--mode=accuracy", "--scenario", "Server"])
    specs = plan_runs(["Offline"], tmp_path, ["--endpoint", "http://a"],
                      {"Offline": tmp_path / "user.conf"})
    assert [(s.kind, s.args[-2:]) for s in specs] == [
        ("performance", ("--mode", "performance")), ("accuracy", ("--mode", "accuracy")),
        ("TEST06", ("--audit", "TEST06"))]
    assert all(s.output_dir == tmp_path / "Offline" / s.kind for s in specs)
