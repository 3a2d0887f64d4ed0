"""Accuracy exactly as MLPerf scores Llama-3.1-8B on CNN/DailyMail, offline and in parallel.

The official procedure (mlcommons/inference language/llama3.1-8b/evaluation.py):
1. dedupe the accuracy log by qsl_idx (first occurrence wins);
2. decode each row's hex `data` as int32 (or int64) token ids;
3. detokenize with the model tokenizer (`use_fast=False`), skipping special tokens;
4. strip, split into sentences with NLTK's English punkt, rejoin with "\\n" (references too);
5. ROUGE-1/2/L/Lsum F1 with stemming, as `rouge_score.RougeScorer.score(reference, prediction)`;
6. per-sample mean x100, rounded to 4 decimals; gen_len = sum of characters of the processed
   predictions; gen_num = number of predictions.
Pass: every ROUGE >= 99% of its target, gen_len within 90%..110% of its target.

Differences in how, not what: NLTK's punkt parameters come from the `punkt` package (NLTK's own
punkt_tab English model converted to Python literals), so nothing is downloaded at run time; the
Porter stemmer is memoised (same stems, far fewer calls); the longest common subsequence is
computed faster, to the same values (below); samples are scored in worker processes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from client_sut.errors import UsageError

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
PASS_FRACTION = 0.99
GEN_LEN_BOUNDS = (0.9, 1.1)
DTYPES = {"int32": np.int32, "int64": np.int64}


@dataclass(frozen=True, slots=True)
class Targets:
    rouge1: float
    rouge2: float
    rougeL: float
    rougeLsum: float
    gen_len: int
    gen_num: int


TARGETS = {
    "datacenter": Targets(38.7792, 15.9075, 24.4957, 35.793, 8_167_644, 13_368),
    "edge": Targets(39.06, 16.1147, 24.6375, 36.124, 3_051_113, 5_000),
}


# --- the accuracy log -----------------------------------------------------------------------

def read_accuracy_log(path: Path) -> list[dict]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"accuracy log {path} does not exist; pass --accuracy-log with an "
                         f"mlperf_log_accuracy.json from an accuracy-mode run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read accuracy log {path}: {exc}") from None
    if not isinstance(rows, list) or not all(
            isinstance(r, dict) and "qsl_idx" in r and "data" in r for r in rows):
        raise UsageError(f"{path} is not an MLPerf accuracy log (a list of rows with qsl_idx "
                         f"and data)")
    return rows


def dedupe(rows: Sequence[dict]) -> list[dict]:
    """First row per qsl_idx, in log order, as the reference does."""
    seen: set[int] = set()
    unique = []
    for row in rows:
        if row["qsl_idx"] not in seen:
            seen.add(row["qsl_idx"])
            unique.append(row)
    return unique


def decode_ids(hex_data: str, dtype: str = "int32") -> np.ndarray:
    raw = bytes.fromhex(hex_data)
    width = np.dtype(DTYPES[dtype]).itemsize
    if len(raw) % width:
        raise UsageError(f"accuracy log data of {len(raw)} bytes is not a whole number of "
                         f"{dtype} values; try --dtype {'int32' if dtype == 'int64' else 'int64'}")
    return np.frombuffer(raw, DTYPES[dtype])


# --- sentence splitting and ROUGE, as the reference does them ----------------------------------

@functools.cache
def sentence_splitter():
    """NLTK's Punkt algorithm with NLTK's English punkt_tab parameters: `nltk.sent_tokenize`."""
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    from punkt.data import english

    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context.update(english.ORTHO_CONTEXT)
    return PunktSentenceTokenizer(params)


def postprocess(text: str) -> str:
    return "\n".join(sentence_splitter().tokenize(text.strip()))


class _StemCachingTokenizer:
    """rouge_score's own tokenize() with a memoised Porter stemmer: identical tokens."""

    def __init__(self) -> None:
        from nltk.stem import porter

        self._stemmer = porter.PorterStemmer()
        self._stemmer.stem = functools.lru_cache(maxsize=1 << 18)(self._stemmer.stem)

    def tokenize(self, text: str) -> list[str]:
        from rouge_score import tokenize

        return tokenize.tokenize(text, self._stemmer)


@functools.cache
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=_StemCachingTokenizer())


def score_chunk(pairs: Sequence[tuple[str, str]]) -> list[tuple[float, float, float, float, int]]:
    """(prediction, reference) texts -> per sample F1 for each ROUGE type and gen length."""
    scorer = _scorer()
    out = []
    with _faster_lcs():
        for prediction, reference in pairs:
            prediction, reference = postprocess(prediction), postprocess(reference)
            scores = scorer.score(reference, prediction)
            out.append((*(scores[key].fmeasure for key in ROUGE_KEYS), len(prediction)))
    return out


# --- the longest common subsequence, the same, faster -------------------------------------------
# rouge_score fills a Python table cell by cell with a max() call for each (two thirds of the
# scoring time). ROUGE-L needs only the LCS's length: bit-parallel (Hyyro 2004), one big-integer
# step per prediction token. ROUGE-Lsum backtracks through the table to find which tokens the
# LCS took, so it gets the same table, filled without the calls. Both are swapped in only while
# client_sut scores (`_faster_lcs`); the bench and the tests hold the scores equal to
# rouge_score's own.

def lcs_length(ref: Sequence[str], can: Sequence[str]) -> int:
    masks: dict[str, int] = {}
    for position, token in enumerate(ref):
        masks[token] = masks.get(token, 0) | 1 << position
    full = (1 << len(ref)) - 1
    row = full  # a zero bit where the LCS so far has taken that ref position
    for token in can:
        taken = row & masks.get(token, 0)
        row = ((row + taken) | (row - taken)) & full
    return len(ref) - row.bit_count()


def lcs_table(ref: Sequence[str], can: Sequence[str]) -> list[list[int]]:
    """rouge_score's `_lcs_table`, value for value."""
    table = [[0] * (len(can) + 1)]
    for token in ref:
        above = table[-1]
        row = [0]
        left = 0
        for j, other in enumerate(can):
            if token == other:
                left = above[j] + 1
            elif above[j + 1] > left:
                left = above[j + 1]
            row.append(left)
        table.append(row)
    return table


def _score_lcs(target_tokens: Sequence[str], prediction_tokens: Sequence[str]):
    """rouge_score's `_score_lcs`, with the LCS's length had without its table."""
    from rouge_score import scoring

    if not target_tokens or not prediction_tokens:
        return scoring.Score(precision=0, recall=0, fmeasure=0)
    length = lcs_length(target_tokens, prediction_tokens)
    precision = length / len(prediction_tokens)
    recall = length / len(target_tokens)
    return scoring.Score(precision=precision, recall=recall,
                         fmeasure=scoring.fmeasure(precision, recall))


@contextlib.contextmanager
def _faster_lcs():
    from rouge_score import rouge_scorer

    saved = rouge_scorer._lcs_table, rouge_scorer._score_lcs
    rouge_scorer._lcs_table, rouge_scorer._score_lcs = lcs_table, _score_lcs
    try:
        yield
    finally:
        rouge_scorer._lcs_table, rouge_scorer._score_lcs = saved


def score_texts(predictions: Sequence[str], references: Sequence[str],
                workers: int | None = None) -> dict:
    """ROUGE x100 rounded to 4 decimals, gen_len, gen_num; spread over worker processes."""
    pairs = list(zip(predictions, references))
    workers = max(1, min(workers or os.cpu_count() or 1, math.ceil(len(pairs) / 500)))
    if workers == 1:
        rows = score_chunk(pairs)
    else:
        size = math.ceil(len(pairs) / (workers * 4))
        chunks = [pairs[i:i + size] for i in range(0, len(pairs), size)]
        # spawn, not fork: the parent may hold tokenizer and LoadGen threads.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            rows = [row for chunk in pool.map(score_chunk, chunks) for row in chunk]
    table = np.array([row[:4] for row in rows], dtype=np.float64).reshape(-1, 4)
    result = {key: round(float(np.mean(table[:, i])) * 100, 4) if len(rows) else 0.0
              for i, key in enumerate(ROUGE_KEYS)}
    result["gen_len"] = int(sum(row[4] for row in rows))
    result["gen_num"] = len(rows)
    return result


# --- pass or fail ---------------------------------------------------------------------------

def judge(scores: dict, targets: Targets) -> dict:
    """Pass/fail against the targets. A partial set (fewer samples than the benchmark) is judged
    against a gen_len target scaled to its size, and said to be partial."""
    gen_len_target = targets.gen_len
    partial = scores["gen_num"] != targets.gen_num
    if partial and scores["gen_num"]:
        gen_len_target = targets.gen_len * scores["gen_num"] / targets.gen_num
    checks = {key: scores[key] >= PASS_FRACTION * getattr(targets, key) for key in ROUGE_KEYS}
    low, high = GEN_LEN_BOUNDS
    checks["gen_len"] = low * gen_len_target <= scores["gen_len"] <= high * gen_len_target
    notes = []
    if partial:
        notes.append(f"{scores['gen_num']} of the benchmark's {targets.gen_num} samples: "
                     f"gen_len judged against a target scaled to {gen_len_target:,.0f}")
    judged = {**asdict(targets), "gen_len": round(gen_len_target)}
    return {"passed": all(checks.values()) and scores["gen_num"] > 0, "checks": checks,
            "partial": partial, "notes": notes, "judged_targets": judged}


def write_accuracy(path: Path, result: dict) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
