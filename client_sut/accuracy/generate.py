"""The reference implementation's outputs: transformers' greedy `generate` on the model's own
weights, with the benchmark's prompts and generation settings, and no server or client in the
way. What a served run is judged against when a model has no published targets.

One sample at a time, unbatched: padding a batch changes the numbers a little and can flip a
greedy choice, and the reference must be the plainest computation there is. MLPerf's
settings: greedy, `max_new_tokens` 128, `min_new_tokens` 1 (the reference SUTs' `min_tokens`),
EOS allowed to end an output.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from client_sut.accuracy.reference import Reference, ReferenceOutput, finish_of
from client_sut.accuracy.rouge import score_texts
from client_sut.config import PromptFormat
from client_sut.data.dataset import Sample, tokenize_prompts
from client_sut.errors import UsageError
from client_sut.request import GenerationParams

IMPLEMENTATION = "transformers greedy generate, float32, one sample at a time"
LIBRARIES = ("transformers", "torch", "tokenizers")


def weights_sha256(model: str) -> str:
    """Of the weight files and config of a local model folder (a hub name: of the name)."""
    folder = Path(model)
    digest = hashlib.sha256()
    if not folder.is_dir():
        digest.update(model.encode())
        return digest.hexdigest()
    files = sorted(p for p in folder.iterdir()
                   if p.suffix in (".safetensors", ".bin") or p.name == "config.json")
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def dataset_sha256(samples: Sequence[Sample]) -> str:
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(sample.article.encode() + b"\0" + sample.reference.encode() + b"\0")
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def _load(model: str):
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise UsageError(f"the reference implementation needs PyTorch and transformers "
                         f"({exc}); run it where the model runs, e.g. install client_sut with "
                         f"its server-cpu extra") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        network = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load model {model!r} for the reference "
                         f"({str(exc).splitlines()[0]}); pass a local model folder") from None
    network.eval()
    return torch, tokenizer, network


def eos_ids(network, tokenizer) -> tuple[int, ...]:
    """The ids that end an output: the generation config's (several for Llama 3), else the
    tokenizer's EOS."""
    configured = network.generation_config.eos_token_id
    if configured is None:
        configured = tokenizer.eos_token_id
    return tuple(configured) if isinstance(configured, (list, tuple)) else (configured,)


def generate_reference(model: str, samples: Sequence[Sample], *, dataset: str,
                       prompt_format: PromptFormat,
                       params: GenerationParams = GenerationParams(),
                       progress: Callable[[str], None] = lambda _: None,
                       name: str | None = None) -> Reference:
    torch, tokenizer, network = _load(model)
    eos = eos_ids(network, tokenizer)
    prompts = tokenize_prompts(tokenizer, samples, prompt_format)
    outputs = []
    started = time.monotonic()
    with torch.inference_mode():
        for index, ids in enumerate(prompts):
            generated = network.generate(
                torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=params.max_tokens, min_new_tokens=params.min_tokens,
                do_sample=False, eos_token_id=list(eos), pad_token_id=eos[0])
            new = tuple(int(t) for t in generated[0, len(ids):])  # unbatched: no padding
            outputs.append(ReferenceOutput(index, new, finish_of(new, eos, params.max_tokens)))
            if (index + 1) % 8 == 0 or index + 1 == len(prompts):
                elapsed = time.monotonic() - started
                progress(f"reference: {index + 1} of {len(prompts)} samples in {elapsed:.0f} s")
    seconds = round(time.monotonic() - started, 1)
    texts = tokenizer.batch_decode([list(o.ids) for o in outputs], skip_special_tokens=True)
    scores = score_texts(texts, [sample.reference for sample in samples], workers=1)
    return Reference(
        model=name or model, weights_sha256=weights_sha256(model),
        prompt_format=prompt_format.value, dataset=dataset,
        dataset_sha256=dataset_sha256(samples), max_new_tokens=params.max_tokens,
        min_new_tokens=params.min_tokens, eos_token_ids=eos, implementation=IMPLEMENTATION,
        versions=library_versions(), outputs=tuple(outputs), generate_seconds=seconds,
        scores=scores)
