"""Accuracy judged against a reference implementation, as MLPerf judges any model.

MLPerf's targets are the reference implementation's scores: a submission passes at 99% of its
ROUGE and within 90-110% of its gen_len. A model without published targets is judged the same
way against a reference computed here (client_sut/accuracy/generate.py: transformers' greedy
`generate` on the same weights, prompts and `max_new_tokens`, no server and no client in the
way). The reference file keeps every sample's output ids, so the served run is compared with
the reference's outputs on exactly the samples it ran, scored by the same ROUGE, and sample by
sample for identical ids.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from client_sut.accuracy.rouge import GEN_LEN_BOUNDS, PASS_FRACTION, ROUGE_KEYS
from client_sut.errors import UsageError

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ReferenceOutput:
    qsl_idx: int
    ids: tuple[int, ...]  # every generated id, the EOS that ended it included
    finish: str  # "eos" or "length"


def outputs_key(weights_sha256: str, prompt_format: str, dataset_sha256: str,
                max_new_tokens: int, min_new_tokens: int, samples: int) -> dict:
    """What a reference's outputs depend on: equal keys, equal outputs (for the same library
    versions)."""
    return {"weights_sha256": weights_sha256, "prompt_format": prompt_format,
            "dataset_sha256": dataset_sha256, "max_new_tokens": max_new_tokens,
            "min_new_tokens": min_new_tokens, "samples": samples}


@dataclass(frozen=True, slots=True)
class Reference:
    """What a reference implementation generated, and everything its outputs depend on."""
    model: str  # the model, as named when the reference was made
    weights_sha256: str  # of the weight files: the same name with other weights is not it
    prompt_format: str
    dataset: str
    dataset_sha256: str  # of the samples' articles and references, in order
    max_new_tokens: int
    min_new_tokens: int
    eos_token_ids: tuple[int, ...]
    implementation: str  # how it was generated, in words
    versions: Mapping[str, str]  # the libraries that did it
    outputs: tuple[ReferenceOutput, ...]
    generate_seconds: float
    format_version: int = FORMAT_VERSION
    scores: Mapping[str, float] = field(default_factory=dict)  # over every output

    def key(self) -> dict:
        return outputs_key(self.weights_sha256, self.prompt_format, self.dataset_sha256,
                           self.max_new_tokens, self.min_new_tokens, len(self.outputs))

    def by_index(self) -> dict[int, ReferenceOutput]:
        return {output.qsl_idx: output for output in self.outputs}

    def to_json(self) -> dict:
        data = asdict(self)
        data["versions"] = dict(self.versions)
        data["scores"] = dict(self.scores)
        data["outputs"] = [{"qsl_idx": o.qsl_idx, "finish": o.finish, "ids": list(o.ids)}
                           for o in self.outputs]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Reference:
        outputs = tuple(ReferenceOutput(o["qsl_idx"], tuple(o["ids"]), o["finish"])
                        for o in data["outputs"])
        return cls(**{**data, "outputs": outputs,
                      "eos_token_ids": tuple(data["eos_token_ids"])})


def write_reference(path: Path, reference: Reference) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    # One output a line: the file stays readable and diffs well.
    data = reference.to_json()
    outputs = data.pop("outputs")
    head = json.dumps(data, indent=2)[:-2]
    lines = ",\n    ".join(json.dumps(o, separators=(",", ":")) for o in outputs)
    partial.write_text(f"{head},\n  \"outputs\": [\n    {lines}\n  ]\n}}\n", encoding="utf-8")
    partial.replace(path)


def read_reference(path: Path) -> Reference:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {data.get('format_version')}, expected "
                             f"{FORMAT_VERSION}")
        return Reference.from_json(data)
    except FileNotFoundError:
        raise UsageError(f"reference {path} does not exist; compute one with `client-sut "
                         f"reference` (or pass the file it wrote)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is not a reference file from `client-sut reference` "
                         f"({exc})") from None


def finish_of(ids: Sequence[int], eos_token_ids: Iterable[int], max_tokens: int) -> str:
    """Why an output ended, from its ids: at EOS, at the token limit, or otherwise (a stop
    string, or a server that leaves the EOS out)."""
    if ids and ids[-1] in set(eos_token_ids):
        return "eos"
    return "length" if len(ids) >= max_tokens else "other"


def output_shape(outputs: Sequence[Sequence[int]], eos_token_ids: Iterable[int],
                 max_tokens: int) -> dict:
    """The outputs' lengths in tokens and how they ended, as the model produced them."""
    eos = tuple(eos_token_ids)
    lengths = sorted(len(ids) for ids in outputs)
    finishes = Counter(finish_of(ids, eos, max_tokens) for ids in outputs)
    if not lengths:
        return {"tokens": None, "finish": {}}
    return {"tokens": {"min": lengths[0], "p50": lengths[len(lengths) // 2],
                       "max": lengths[-1], "mean": round(sum(lengths) / len(lengths), 2),
                       "one_token": sum(1 for n in lengths if n == 1)},
            "finish": {name: finishes.get(name, 0) for name in ("eos", "length", "other")}}


def judge_against_reference(scores: Mapping, reference_scores: Mapping, *,
                            served: Mapping[int, Sequence[int]], reference: Reference,
                            reference_path: Path | str) -> dict:
    """The served run's ROUGE and gen_len against the reference's on the same samples: each
    ROUGE at least 99% of the reference's, gen_len within 90-110%; and how many samples' ids
    are identical to the reference's."""
    ratios = {key: _ratio(scores[key], reference_scores[key]) for key in ROUGE_KEYS}
    ratios["gen_len"] = _ratio(scores["gen_len"], reference_scores["gen_len"])
    checks = {key: ratios[key] >= PASS_FRACTION for key in ROUGE_KEYS}
    low, high = GEN_LEN_BOUNDS
    checks["gen_len"] = low <= ratios["gen_len"] <= high
    expected = reference.by_index()
    identical = sum(1 for index, ids in served.items() if tuple(ids) == expected[index].ids)
    short = [key for key, ok in checks.items() if not ok]
    notes = [f"{key} is {ratios[key] * 100:.1f}% of the reference's ({scores[key]:g} against "
             f"{reference_scores[key]:g}); it must be "
             + ("at least 99%" if key in ROUGE_KEYS else "within 90-110%") for key in short]
    return {
        "passed": not short and bool(served),
        "checks": checks,
        "notes": notes,
        "judged_against": "reference",
        "reference": {
            "path": str(reference_path), "model": reference.model,
            "prompt_format": reference.prompt_format, "implementation": reference.implementation,
            "versions": dict(reference.versions),
            "scores": dict(reference_scores),
            "ratios": {key: round(value, 4) for key, value in ratios.items()},
        },
        "identical_outputs": {"samples": identical, "of": len(served)},
    }


def check_covers(reference: Reference, qsl_indices: Iterable[int], prompt_format: str | None,
                 path: Path | str) -> None:
    """The reference must hold every sample the run scored, made with the run's prompt format."""
    missing = sorted(set(qsl_indices) - set(reference.by_index()))
    if missing:
        raise UsageError(f"reference {path} has {len(reference.outputs)} samples and lacks "
                         f"qsl_idx {missing[0]} ({len(missing)} missing); compute it with at "
                         f"least as many samples as the run")
    if prompt_format is not None and prompt_format != reference.prompt_format:
        raise UsageError(f"reference {path} was made with --prompt-format "
                         f"{reference.prompt_format}, the run used {prompt_format}; give both "
                         f"the same")


def _ratio(value: float, reference: float) -> float:
    if reference == 0:
        return 1.0 if value == 0 else float("inf")
    return value / reference
