"""Scoring speed: 13,368 distinct (prediction, reference) pairs, as many as the datacenter set.

Every pair is new: its prediction is three sentences drawn from all the 200 real CNN/DailyMail
articles of ../shared/data, its reference three of their highlights' sentences, and in each a few
words are made new (a real word with letters of the pair's number after it), so the vocabulary
grows with the pairs as a real set's does (about four new words a pair, 50,000 over the set)
and the memoised stemmer meets new words throughout, not 200 articles' words again and again.
Three timings of the same scoring:
- client_sut on every core (what `client-sut evaluate` does);
- client_sut in one process (isolates the gains that are not parallelism);
- plain rouge_score, one sample after another in one process (the reference's way),
and the largest difference between client_sut's scores and rouge_score's.

    python bench/bench_rouge.py [--pairs 13368]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import time
from pathlib import Path

import numpy as np

from client_sut.accuracy.rouge import (
    ROUGE_KEYS,
    postprocess,
    score_texts,
    sentence_splitter,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cnndm_validation_200.jsonl"
NEW_WORDS_PER_TEXT = 2


def _with_new_words(text: str, pair: int, rng: random.Random) -> str:
    words = text.split(" ")
    for n in range(NEW_WORDS_PER_TEXT):
        at = rng.randrange(len(words))
        suffix, number = "", pair * NEW_WORDS_PER_TEXT + n
        while True:  # the number in letters: a word no other pair has
            number, digit = divmod(number, 26)
            suffix += string.ascii_lowercase[digit]
            if not number:
                break
        words[at] += suffix
    return " ".join(words)


def pairs(count: int) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    splitter = sentence_splitter()
    sentences = [s for r in rows for s in splitter.tokenize(r["article"]) if len(s) > 20]
    highlights = [s for r in rows for s in splitter.tokenize(r["highlights"])]
    predictions, references = [], []
    for pair in range(count):
        rng = random.Random(pair)
        predictions.append(_with_new_words(" ".join(rng.sample(sentences, 3)), pair, rng))
        references.append(_with_new_words(" ".join(rng.sample(highlights, 3)), pair, rng))
    return predictions, references


def plain_sequential(predictions: list[str], references: list[str]) -> dict:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    per_sample = [scorer.score(postprocess(ref), postprocess(pred))
                  for pred, ref in zip(predictions, references)]
    return {key: round(float(np.mean([s[key].fmeasure for s in per_sample])) * 100, 4)
            for key in ROUGE_KEYS}


def timed(label: str, function, *args) -> tuple[float, dict]:
    started = time.perf_counter()
    result = function(*args)
    seconds = time.perf_counter() - started
    print(f"{label:<44} {seconds:8.2f} s   rouge1 {result['rouge1']}")
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=13_368)
    args = parser.parse_args()
    predictions, references = pairs(args.pairs)
    cores = os.cpu_count()
    print(f"{args.pairs} pairs, {cores} cores")
    parallel, ours = timed(f"client_sut, {cores} worker processes", score_texts,
                           predictions, references, None)
    single, ours_one = timed("client_sut, 1 process", score_texts, predictions, references, 1)
    plain, reference = timed("plain rouge_score, sequential", plain_sequential,
                             predictions, references)
    difference = max(abs(ours[k] - reference[k]) for k in ROUGE_KEYS)
    same = all(ours[k] == ours_one[k] == reference[k] for k in ROUGE_KEYS)
    print(f"speed-up over plain sequential: {plain / parallel:.1f}x (1 process: "
          f"{plain / single:.1f}x); identical scores: {same} (largest difference "
          f"{difference:g})")


if __name__ == "__main__":
    main()
