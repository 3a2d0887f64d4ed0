"""The query sample library's data: CNN/DailyMail in its three forms, and the official prompt.

Forms accepted by `load_samples`:
- MLCommons' preprocessed `cnn_eval.json`: a JSON list of {input, tok_input, output};
- JSONL (`.jsonl`), one object a line, with article/highlights or input/output;
- a Hugging Face dataset, `hf:NAME_OR_DIR[:CONFIG[:SPLIT]]` (split defaults to validation),
  read through `datasets.load_dataset`, which also reads local folders and the local cache.
`qsl_idx` in LoadGen's logs is the position in the loaded list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from client_sut.config import PromptFormat
from client_sut.errors import UsageError

PROMPT_TEMPLATE = (
    "Summarize the following news article in 128 tokens. "
    "Please output the summary only, without any other text.\n\nArticle:\n{input}\n\nSummary:"
)
HF_PREFIX = "hf:"
# Column pairs (article, reference) in the order they are tried.
COLUMN_PAIRS = (("input", "output"), ("article", "highlights"))


@dataclass(frozen=True, slots=True)
class Sample:
    article: str
    reference: str
    prompt_ids: tuple[int, ...] | None = None  # MLCommons' tok_input, when the file has it

    @property
    def prompt(self) -> str:
        return build_prompt(self.article)


def build_prompt(article: str) -> str:
    return PROMPT_TEMPLATE.format(input=article)


def load_samples(spec: str, limit: int | None = None) -> list[Sample]:
    """Load a dataset, keeping the first `limit` samples. Raises UsageError on bad input."""
    if spec.startswith(HF_PREFIX):
        samples = _from_rows(_hf_rows(spec[len(HF_PREFIX):]), spec)
    else:
        samples = _from_rows(_file_rows(Path(spec)), spec)
    if not samples:
        raise UsageError(f"dataset {spec} has no samples; give a file with at least one record")
    if limit is not None:
        if limit > len(samples):
            raise UsageError(
                f"--total-sample-count {limit} is more than the {len(samples)} samples in {spec}; "
                f"ask for at most {len(samples)}")
        samples = samples[:limit]
    return samples


def _file_rows(path: Path) -> Iterable[dict]:
    if not path.exists():
        raise UsageError(f"dataset {path} does not exist; pass --dataset with an existing file "
                         f"or hf:NAME for a Hugging Face dataset")
    if path.is_dir():
        raise UsageError(f"dataset {path} is a folder; pass a .json/.jsonl file, "
                         f"or hf:{path} to read it as a Hugging Face dataset folder")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read dataset {path}: {exc}") from None
    if path.suffix == ".jsonl":
        return _jsonl_rows(text, path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"dataset {path} is not valid JSON ({exc}); expected MLCommons' "
                         f"cnn_eval.json (a list of records) or a .jsonl file") from None
    if not isinstance(data, list):
        raise UsageError(f"dataset {path} holds a JSON {type(data).__name__}, expected a list of "
                         f"records like MLCommons' cnn_eval.json")
    return data


def _jsonl_rows(text: str, path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UsageError(f"dataset {path} line {number} is not valid JSON ({exc})") from None
    return rows


def _hf_rows(spec: str) -> Iterable[dict]:
    name, _, rest = spec.partition(":")
    config, _, split = rest.partition(":")
    try:
        import datasets
    except ImportError:
        raise UsageError("hf: datasets need the `datasets` package: pip install datasets") from None
    try:
        return datasets.load_dataset(name, config or None, split=split or "validation")
    except Exception as exc:  # the library raises many types for a missing dataset or split
        raise UsageError(f"cannot load Hugging Face dataset {spec!r}: {exc}".splitlines()[0]) from None


def _from_rows(rows: Iterable[dict], spec: str) -> list[Sample]:
    samples = []
    for position, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UsageError(f"dataset {spec} record {position} is not an object")
        samples.append(_sample(row, position, spec))
    return samples


def _sample(row: dict, position: int, spec: str) -> Sample:
    for article_key, reference_key in COLUMN_PAIRS:
        if article_key in row and reference_key in row:
            article, reference = row[article_key], row[reference_key]
            if not isinstance(article, str) or not isinstance(reference, str):
                raise UsageError(f"dataset {spec} record {position}: {article_key} and "
                                 f"{reference_key} must be strings")
            tok_input = row.get("tok_input")
            prompt_ids = tuple(int(t) for t in tok_input) if tok_input else None
            return Sample(article, reference, prompt_ids)
    raise UsageError(f"dataset {spec} record {position} has keys {sorted(row)[:6]}; expected "
                     f"input/output (cnn_eval.json) or article/highlights")


def chat_messages(sample: Sample) -> list[dict]:
    """The chat format's conversation: the official prompt, whole, as the user turn."""
    return [{"role": "user", "content": sample.prompt}]


def prompt_texts(tokenizer, samples: Sequence[Sample],
                 prompt_format: PromptFormat = PromptFormat.OFFICIAL) -> list[str]:
    """Each sample's prompt as text: what a server that takes no token ids is sent."""
    if prompt_format is PromptFormat.OFFICIAL:
        return [sample.prompt for sample in samples]
    return [_chat_template(tokenizer, sample, tokenize=False) for sample in samples]


def tokenize_prompts(tokenizer, samples: Sequence[Sample],
                     prompt_format: PromptFormat = PromptFormat.OFFICIAL
                     ) -> list[tuple[int, ...]]:
    """Prompt token ids for every sample. Official: MLCommons' tok_input where given, else the
    tokenizer with its default special tokens (so Llama's BOS is prepended, as the reference
    does). Chat: the tokenizer's own chat template, with the assistant's turn opened."""
    if prompt_format is PromptFormat.CHAT:
        return [tuple(_chat_template(tokenizer, sample, tokenize=True)) for sample in samples]
    missing = [i for i, s in enumerate(samples) if s.prompt_ids is None]
    encoded = tokenizer([samples[i].prompt for i in missing])["input_ids"] if missing else []
    by_index = dict(zip(missing, encoded))
    return [s.prompt_ids if s.prompt_ids is not None else tuple(by_index[i])
            for i, s in enumerate(samples)]


def _chat_template(tokenizer, sample: Sample, *, tokenize: bool):
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError(f"--prompt-format chat needs a chat template, and tokenizer "
                         f"{getattr(tokenizer, 'name_or_path', '')!r} has none; use "
                         f"--prompt-format official")
    return tokenizer.apply_chat_template(chat_messages(sample), add_generation_prompt=True,
                                         tokenize=tokenize, return_dict=False)
