"""Accuracy against a reference implementation: the file's round trip, what it must cover, and
the 99% rule on each figure."""

import pytest

from client_sut.accuracy.reference import (
    Reference,
    ReferenceOutput,
    check_covers,
    finish_of,
    judge_against_reference,
    output_shape,
    read_reference,
    write_reference,
)
from client_sut.errors import UsageError

EOS = 2
SCORES = {"rouge1": 30.0, "rouge2": 12.0, "rougeL": 20.0, "rougeLsum": 27.0, "gen_len": 1000,
          "gen_num": 2}


def reference(outputs=((0, (5, 6, EOS)), (1, (7,) * 128))) -> Reference:
    return Reference(
        model="m", weights_sha256="w", prompt_format="chat", dataset="d", dataset_sha256="s",
        max_new_tokens=128, min_new_tokens=1, eos_token_ids=(EOS,), implementation="greedy",
        versions={"transformers": "5"}, generate_seconds=1.0, scores=SCORES,
        outputs=tuple(ReferenceOutput(i, ids, finish_of(ids, (EOS,), 128)) for i, ids in outputs))


def test_a_reference_file_reads_back_equal(tmp_path):
    path = tmp_path / "reference.json"
    write_reference(path, reference())
    assert read_reference(path) == reference()
    assert read_reference(path).outputs[0].finish == "eos"
    assert read_reference(path).outputs[1].finish == "length"


def test_an_unreadable_reference_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        read_reference(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"format_version": 99}')
    with pytest.raises(UsageError, match="not a reference file"):
        read_reference(tmp_path / "bad.json")


def test_the_reference_must_cover_the_run_and_share_its_prompt_format():
    check_covers(reference(), [0, 1], "chat", "r.json")
    with pytest.raises(UsageError, match="lacks qsl_idx 2"):
        check_covers(reference(), [0, 1, 2], "chat", "r.json")
    with pytest.raises(UsageError, match="--prompt-format chat"):
        check_covers(reference(), [0], "official", "r.json")


def test_each_figure_is_held_to_99_percent_and_gen_len_to_90_110():
    served = {0: (5, 6, EOS), 1: (7,) * 128}
    at_99 = {**SCORES, "rouge1": 29.7}  # exactly 99% of 30
    verdict = judge_against_reference(at_99, SCORES, served=served, reference=reference(),
                                      reference_path="r.json")
    assert verdict["passed"] and verdict["identical_outputs"] == {"samples": 2, "of": 2}
    # Truncated outputs: ROUGE-2 and gen_len fall short, and the notes say which.
    short = {**SCORES, "rouge2": 11.8, "gen_len": 880}
    verdict = judge_against_reference(short, SCORES, served={0: (5, 6, EOS), 1: (7,) * 64},
                                      reference=reference(), reference_path="r.json")
    assert not verdict["passed"]
    assert {k for k, ok in verdict["checks"].items() if not ok} == {"rouge2", "gen_len"}
    assert [n.split()[0] for n in verdict["notes"]] == ["rouge2", "gen_len"]
    assert "98.3% of the reference's" in verdict["notes"][0]
    assert verdict["identical_outputs"] == {"samples": 1, "of": 2}
    too_long = {**SCORES, "gen_len": 1101}
    assert not judge_against_reference(too_long, SCORES, served=served, reference=reference(),
                                       reference_path="r.json")["checks"]["gen_len"]


def test_output_shape_counts_lengths_and_how_outputs_ended():
    shape = output_shape([(EOS,), (5, EOS), (9,) * 128, (4, 4)], (EOS,), 128)
    assert shape["tokens"] == {"min": 1, "p50": 2, "max": 128, "mean": 33.25, "one_token": 1}
    assert shape["finish"] == {"eos": 2, "length": 1, "other": 1}
