"""Accuracy as MLPerf scores it: ROUGE by hand, agreement with rouge_score, pass/fail edges."""

import json
from dataclasses import asdict

import numpy as np
import pytest

from client_sut.accuracy.rouge import (
    PASS_FRACTION,
    TARGETS,
    decode_ids,
    dedupe,
    judge,
    postprocess,
    score_texts,
    sentence_splitter,
)
from client_sut.accuracy.evaluate import evaluate_rows
from client_sut.errors import UsageError
from client_sut.accuracy.summary import accuracy_lines
from tests.conftest import SHARED_DATA

DC = TARGETS["datacenter"]


def test_rouge_by_hand_on_tiny_texts():
    # Prediction "the cat sat" against "the cat sat on the mat": 3 of 3 unigrams match, 3 of 6
    # reference unigrams are found: P=1, R=1/2, F1=2/3. Bigrams: 2 of 2, 2 of 5: F1=4/7.
    scores = score_texts(["the cat sat"], ["the cat sat on the mat"], workers=1)
    assert scores["rouge1"] == round(2 / 3 * 100, 4)
    assert scores["rouge2"] == round(4 / 7 * 100, 4)
    assert scores["rougeL"] == round(2 / 3 * 100, 4)
    assert scores["gen_len"] == len("the cat sat") and scores["gen_num"] == 1


def test_stemming_matches_inflections():
    # "running"/"runs" stem to "run"; words of 3 letters or fewer are left as they are.
    scores = score_texts(["dogs running"], ["dog runs"], workers=1)
    assert scores["rouge1"] == 100.0


def test_sentences_are_split_like_nltk_punkt_and_joined_by_newlines():
    text = "  Mr. Smith went to Washington. He arrived at 5 p.m. on Monday. It rained.  "
    assert postprocess(text) == ("Mr. Smith went to Washington.\nHe arrived at 5 p.m. on Monday."
                                 "\nIt rained.")


def test_sentence_splitter_is_nltks_punkt_algorithm_with_the_english_model():
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    splitter = sentence_splitter()
    # NLTK's own algorithm (what nltk.sent_tokenize runs), not a re-implementation.
    assert type(splitter) is PunktSentenceTokenizer
    params = splitter._params
    assert {"mr", "mrs", "dr", "jan", "inc", "u.s"} <= params.abbrev_types
    assert len(params.abbrev_types) > 100 and len(params.ortho_context) > 1000
    assert splitter.tokenize("The U.S. Army said so. It was Jan. 5 when Dr. Li left.") == [
        "The U.S. Army said so.", "It was Jan. 5 when Dr. Li left."]


def test_agreement_with_rouge_score_called_directly_on_real_articles():
    from rouge_score import rouge_scorer

    rows = [json.loads(line) for line in SHARED_DATA.read_text().splitlines()]
    # Lead-3, a classic summary baseline, against the real highlights.
    predictions = [" ".join(sentence_splitter().tokenize(r["article"])[:3]) for r in rows]
    references = [r["highlights"] for r in rows]
    plain = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    per_sample = [plain.score(postprocess(ref), postprocess(pred))
                  for pred, ref in zip(predictions, references)]
    expected = {key: round(float(np.mean([s[key].fmeasure for s in per_sample])) * 100, 4)
                for key in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
    ours = score_texts(predictions, references, workers=2)
    assert {key: ours[key] for key in expected} == expected
    assert ours["gen_len"] == sum(len(postprocess(p)) for p in predictions)
    assert 20 < ours["rouge1"] < 60  # lead-3 on CNN/DM scores about 40


def scores_at(fraction: float, gen_len_fraction: float = 1.0) -> dict:
    scores = {key: getattr(DC, key) * fraction for key in ("rouge1", "rouge2", "rougeL",
                                                           "rougeLsum")}
    return {**scores, "gen_len": round(DC.gen_len * gen_len_fraction), "gen_num": DC.gen_num}


def test_exactly_99_percent_passes_and_just_below_fails():
    assert judge(scores_at(PASS_FRACTION), DC)["passed"]
    below = scores_at(PASS_FRACTION)
    below["rouge2"] -= 1e-4
    verdict = judge(below, DC)
    assert not verdict["passed"] and verdict["checks"]["rouge2"] is False


@pytest.mark.parametrize("fraction, passed", [(0.9, True), (1.1, True), (0.8999, False),
                                              (1.1001, False)])
def test_gen_len_bounds(fraction, passed):
    assert judge(scores_at(1.0, fraction), DC)["passed"] is passed


def test_partial_set_scales_gen_len_and_says_so():
    scores = {"rouge1": 40.0, "rouge2": 17.0, "rougeL": 25.0, "rougeLsum": 36.0,
              "gen_len": round(DC.gen_len / DC.gen_num * 100), "gen_num": 100}
    verdict = judge(scores, DC)
    assert verdict["passed"] and verdict["partial"]
    assert "100 of the benchmark's 13368 samples" in verdict["notes"][0]
    # What it was judged by, and what the table shows: the scaled gen_len target.
    assert verdict["judged_targets"]["gen_len"] == round(DC.gen_len * 100 / DC.gen_num) == 61098
    assert verdict["judged_targets"]["rouge1"] == DC.rouge1
    lines = accuracy_lines({**scores, **verdict, "targets": asdict(DC), "category": "datacenter"})
    gen_len_row = next(line for line in lines if line.strip().startswith("gen_len"))
    assert "61,098" in gen_len_row and f"{DC.gen_len:,}" not in gen_len_row


def test_dedupe_keeps_the_first_row_per_sample():
    rows = [{"qsl_idx": 1, "data": "a"}, {"qsl_idx": 0, "data": "b"},
            {"qsl_idx": 1, "data": "c"}]
    assert dedupe(rows) == [{"qsl_idx": 1, "data": "a"}, {"qsl_idx": 0, "data": "b"}]


def test_int32_and_int64_logs_decode_to_the_same_ids():
    ids = [128000, 5, 70000]
    assert decode_ids(np.array(ids, np.int32).tobytes().hex(), "int32").tolist() == ids
    assert decode_ids(np.array(ids, np.int64).tobytes().hex(), "int64").tolist() == ids
    with pytest.raises(UsageError, match="not a whole number of int64 values"):
        decode_ids(np.array([1, 2, 3], np.int32).tobytes().hex(), "int64")


def test_evaluate_rows_decodes_skips_special_tokens_and_scores(demo_tokenizer):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(demo_tokenizer)
    references = ["The flood hit the city.", "Officials said repairs would take weeks."]
    # Sample 1's prediction is its reference exactly, BOS included (a special token: skipped).
    ids = tokenizer(references[1])["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    rows = [{"qsl_idx": 1, "data": np.array(ids, np.int64).tobytes().hex()}]
    result = evaluate_rows(rows, references, tokenizer, dtype="int64", workers=1)
    assert result["rouge1"] == result["rougeLsum"] == 100.0
    assert result["gen_len"] == len(references[1]) and result["gen_num"] == 1
    with pytest.raises(UsageError, match="names qsl_idx 5 but the dataset has 2 samples"):
        evaluate_rows([{"qsl_idx": 5, "data": ""}], references, tokenizer)


def test_the_faster_lcs_gives_rouge_scores_own_values():
    import random

    from rouge_score import rouge_scorer

    from client_sut.accuracy.rouge import lcs_length, lcs_table

    rng = random.Random(7)
    for _ in range(500):  # small alphabets: many ties, where a different table would show
        ref = [str(rng.randrange(6)) for _ in range(rng.randrange(0, 40))]
        can = [str(rng.randrange(6)) for _ in range(rng.randrange(0, 40))]
        table = rouge_scorer._lcs_table(ref, can)
        assert lcs_table(ref, can) == table
        assert lcs_length(ref, can) == table[-1][-1]
