"""Scoring speed: 13,368 (prediction, reference) pairs, as many as the datacenter benchmark.

The pairs are the 200 real CNN/DailyMail samples of ../shared/data repeated, each predicted by
its lead-3 sentences. Three timings of the same scoring:
- client_sut on every core (what `client-sut evaluate` does);
- client_sut in one process (isolates the gain of the memoised stemmer from parallelism);
- plain rouge_score, one sample after another in one process (the reference's way).
Repetition flatters the stem cache (200 articles' vocabulary); the note says so.

    python bench/bench_rouge.py [--pairs 13368]
"""

from __future__ import annotations

import argparse
import json
import os
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


def pairs(count: int) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    predictions = [" ".join(sentence_splitter().tokenize(r["article"])[:3]) for r in rows]
    references = [r["highlights"] for r in rows]
    repeat = -(-count // len(rows))
    return (predictions * repeat)[:count], (references * repeat)[:count]


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
    same = all(ours[k] == ours_one[k] == reference[k] for k in ROUGE_KEYS)
    print(f"speed-up over plain sequential: {plain / parallel:.1f}x (1 process: "
          f"{plain / single:.1f}x); identical scores: {same}")


if __name__ == "__main__":
    main()
