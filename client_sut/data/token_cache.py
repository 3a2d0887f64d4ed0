"""Tokenized prompts kept on disk, so that the runs of one search tokenize the dataset once.

Tokenizing 13,368 articles takes tens of seconds; an `sla` search runs each probe as a process
of its own (LoadGen takes one configuration per process) and would pay that every probe. The
cache is used only when everything the ids depend on is unchanged: dataset (path, size and
modification time), tokenizer, sample count, prompt template and prompt format. The warm-up's
prompts are kept after the samples', so that a run whose ids are all here never loads the
tokenizer (data/tokenization.LazyTokenizer).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import msgspec

from client_sut.data.dataset import PROMPT_TEMPLATE

PromptIds = list[tuple[int, ...]]


def cache_key(dataset: str, tokenizer: str, sample_count: int, prompt_format: str,
              warmups: int = 0) -> str:
    """`warmups`: the warm-up prompts whose ids follow the samples' in the same entry."""
    path = Path(dataset)
    stat = f"{path.stat().st_size}:{path.stat().st_mtime_ns}" if path.is_file() else ""
    material = "\n".join([str(path.resolve()) if path.exists() else dataset, stat, tokenizer,
                          str(sample_count), PROMPT_TEMPLATE, prompt_format,
                          f"{warmups} warm-ups"])
    return hashlib.sha256(material.encode()).hexdigest()


class _Cached(msgspec.Struct):
    key: str
    prompts: list[list[int]]


def cached_prompt_ids(path: Path | None, key: str, tokenize: Callable[[], PromptIds]) -> PromptIds:
    """The cached ids when `path` holds them under `key`, else `tokenize()` (stored at `path`)."""
    if path is None:
        return tokenize()
    try:
        cached = msgspec.msgpack.decode(path.read_bytes(), type=_Cached)
        if cached.key == key:
            return [tuple(ids) for ids in cached.prompts]
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        pass  # absent or unreadable: tokenize again
    prompt_ids = tokenize()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(msgspec.msgpack.encode(_Cached(key, [list(ids) for ids in prompt_ids])))
    partial.replace(path)  # never half a file for a concurrent reader
    return prompt_ids


def cached_prompt_lengths(path: Path) -> list[int]:
    """Each prompt's length in tokens from a cache file, whatever it was keyed by ([] when
    there is none)."""
    try:
        return [len(ids) for ids in msgspec.msgpack.decode(path.read_bytes(), type=_Cached).prompts]
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return []
