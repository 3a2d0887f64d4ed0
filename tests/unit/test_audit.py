"""TEST06's three checks on hand-made accuracy-log rows."""

import numpy as np

from client_sut.accuracy.audit import audit_config_path, verify_test06

EOS = 9


def row(data, first=None, count=None, idx=0):
    first = data[:1] if first is None else first
    return {"qsl_idx": idx, "data": np.array(data, np.int32).tobytes().hex(),
            "token_data": np.array(first, np.int32).tobytes().hex(),
            "token_count": len(data) if count is None else count}


def verify(rows, first_token=True):
    return verify_test06(rows, eos_token_id=EOS, check_first_token=first_token)


def test_consistent_responses_pass():
    result = verify([row([5, 6, 7, EOS]), row([EOS, EOS], idx=1)])
    assert result["passed"] and result["checks"] == {"first_token": True, "eos": True,
                                                     "sample_length": True}
    assert result["samples_checked"] == 2


def test_first_token_differing_from_the_output_fails():
    result = verify([row([5, 6, 7], first=[8])])
    assert not result["passed"] and result["checks"]["first_token"] is False
    assert result["failed_qsl_idx"] == {"first_token": [0]}


def test_two_trailing_eos_fail_unless_that_is_the_whole_output():
    assert not verify([row([5, EOS, EOS])])["passed"]
    assert verify([row([EOS, EOS])])["passed"]


def test_token_count_must_match_the_data():
    result = verify([row([5, 6], count=3)])
    assert not result["passed"] and result["checks"]["sample_length"] is False


def test_offline_skips_the_first_token_check():
    result = verify([row([5, 6], first=[8])], first_token=False)
    assert result["passed"] and result["checks"]["first_token"] is None


def test_empty_log_does_not_pass():
    assert not verify([])["passed"]


def test_audit_config_ships_with_the_package():
    text = audit_config_path("TEST06").read_text()
    assert "*.*.accuracy_log_sampling_target = 100" in text and "*.*.mode = 2" in text
