"""An accuracy log scored and judged: against MLPerf's published targets, or against a
reference implementation's outputs (accuracy/reference.py) for a model without targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from client_sut.accuracy.reference import (
    Reference,
    check_covers,
    judge_against_reference,
    output_shape,
    read_reference,
)
from client_sut.accuracy.rouge import (
    ROUGE_KEYS,
    TARGETS,
    decode_ids,
    dedupe,
    judge,
    read_accuracy_log,
    score_texts,
    write_accuracy,
)
from client_sut.errors import UsageError
from client_sut.request import GenerationParams

MAX_TOKENS = GenerationParams().max_tokens


def evaluate_rows(rows: Sequence[dict], references: Sequence[str], tokenizer, *,
                  dtype: str = "int32", category: str = "datacenter",
                  workers: int | None = None, reference: Reference | None = None,
                  reference_path: Path | str = "", prompt_format: str | None = None) -> dict:
    """Score an accuracy log's rows against the dataset's references (qsl_idx = position);
    judged against `reference`'s outputs on the same samples where given, else against the
    published targets of `category`."""
    unique = dedupe(rows)
    out_of_range = [r["qsl_idx"] for r in unique if not 0 <= r["qsl_idx"] < len(references)]
    if out_of_range:
        raise UsageError(f"accuracy log names qsl_idx {out_of_range[0]} but the dataset has "
                         f"{len(references)} samples; pass the dataset the run used")
    if reference is not None:
        check_covers(reference, (r["qsl_idx"] for r in unique), prompt_format, reference_path)
    ids = [decode_ids(r["data"], dtype).tolist() for r in unique]
    texts = [references[r["qsl_idx"]] for r in unique]
    scores = score_texts(tokenizer.batch_decode(ids, skip_special_tokens=True), texts, workers)
    eos = reference.eos_token_ids if reference is not None else (tokenizer.eos_token_id,)
    shape = output_shape(ids, eos, MAX_TOKENS)
    if reference is None:
        targets = TARGETS[category]
        return {**scores, **judge(scores, targets), "targets": asdict(targets),
                "category": category, "dtype": dtype, "outputs": shape}
    expected = reference.by_index()
    reference_ids = [list(expected[r["qsl_idx"]].ids) for r in unique]
    reference_scores = score_texts(tokenizer.batch_decode(reference_ids,
                                                          skip_special_tokens=True),
                                   texts, workers)
    verdict = judge_against_reference(
        scores, reference_scores, served={r["qsl_idx"]: i for r, i in zip(unique, ids)},
        reference=reference, reference_path=reference_path)
    verdict["reference"]["outputs"] = output_shape(reference_ids, eos,
                                                   reference.max_new_tokens)
    # The reference's own scores on these samples are the targets this run is judged by.
    targets = {key: reference_scores[key] for key in (*ROUGE_KEYS, "gen_len", "gen_num")}
    return {**scores, **verdict, "targets": targets, "judged_targets": targets,
            "category": "reference", "dtype": dtype, "outputs": shape}


def evaluate_file(log_path: Path, dataset: str, tokenizer_name: str, *, dtype: str = "int32",
                  category: str = "datacenter", output: Path | None = None,
                  workers: int | None = None,
                  reference_path: Path | None = None) -> tuple[dict, Path]:
    """`client-sut evaluate`: score a log from any MLPerf harness; writes accuracy.json."""
    from client_sut.data.dataset import load_samples
    from client_sut.data.tokenization import load_tokenizer

    rows = read_accuracy_log(log_path)
    reference = read_reference(reference_path) if reference_path is not None else None
    references = [sample.reference for sample in load_samples(dataset)]
    tokenizer = load_tokenizer(tokenizer_name, use_fast=False)
    result = evaluate_rows(rows, references, tokenizer, dtype=dtype, category=category,
                           workers=workers, reference=reference,
                           reference_path=reference_path or "")
    output = output or log_path.parent / "accuracy.json"
    write_accuracy(output, result)
    return result, output
