"""Build the demo model: a random-weight tiny Llama with a BPE tokenizer trained here, offline.

Its answers are noise; its purpose is a real vLLM server streaming real tokens on any machine.
The folder is a normal Hugging Face model folder (config, safetensors, tokenizer with a chat
template), so vLLM serves it with `--model DIR` and transformers loads its tokenizer.

A small vocabulary splits news into far more tokens than Llama's 128k vocabulary does, so the
model gets 8,192 positions: the longest CNN/DailyMail articles reach about 4,000 tokens here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from server.demo_corpus import build_corpus

BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
HEADER_START, HEADER_END = "<|start_header_id|>", "<|end_header_id|>"
SPECIAL_TOKENS = [BOS, EOS, EOT, HEADER_START, HEADER_END]
VOCAB_SIZE = 4096
MAX_POSITIONS = 8192
# Llama 3's template, reduced to what the demo needs.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' "
    "+ message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
MARKER = "client_sut_demo.json"


def _training_text() -> list[str]:
    """News-like text from the demo corpus plus a fixed slice of the standard library's sources,
    so the vocabulary covers prose, digits and punctuation."""
    texts = [r["article"] + "\n" + r["highlights"] for r in build_corpus(count=256, seed=7)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in sorted(p.name for p in stdlib.glob("*.py"))[:120]:
        texts.append((stdlib / name).read_text(encoding="utf-8", errors="replace"))
    return texts


def build_tokenizer(out_dir: Path) -> None:
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(_training_text(), trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    # Like Llama 3: the tokenizer's default special tokens prepend BOS, which MLPerf's prompt needs.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOT, pad_token=EOS,
        model_max_length=MAX_POSITIONS, chat_template=CHAT_TEMPLATE,
    )
    fast.save_pretrained(out_dir)


def build_model(out_dir: Path, seed: int) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(out_dir)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tok.convert_tokens_to_ids(BOS),
        eos_token_id=[tok.convert_tokens_to_ids(EOS), tok.convert_tokens_to_ids(EOT)],
        pad_token_id=tok.convert_tokens_to_ids(EOS), tie_word_embeddings=False,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out_dir, safe_serialization=True)


def build(out_dir: Path, seed: int = 0, force: bool = False) -> Path:
    """Build the demo model into out_dir, unless a finished build is already there.

    Built in a folder beside it and renamed into place, so a server started on out_dir by
    another process (parallel tests, the demo) never reads a half-written model."""
    if (out_dir / MARKER).exists() and not force:
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    staging.chmod(0o755)  # not mkdtemp's 0700: servers in containers read it as other users
    started = time.monotonic()
    build_tokenizer(staging)
    build_model(staging, seed)
    seconds = round(time.monotonic() - started, 1)
    # Written last: its presence means the folder is complete.
    (staging / MARKER).write_text(json.dumps({"seed": seed, "vocab_size": VOCAB_SIZE,
                                              "build_seconds": seconds}))
    if force or not (out_dir / MARKER).exists():  # else another builder finished first
        shutil.rmtree(out_dir, ignore_errors=True)  # an unfinished build's, or the forced one
        try:
            staging.rename(out_dir)
        except OSError:  # another builder renamed its copy in between: the same model
            pass
    shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the offline demo model (tiny Llama).")
    parser.add_argument("output", type=Path, help="model folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild even if present")
    args = parser.parse_args(argv)
    started = time.monotonic()
    build(args.output, args.seed, args.force)
    print(f"demo model ready in {args.output} ({time.monotonic() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
