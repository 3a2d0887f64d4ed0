"""Loading a Hugging Face tokenizer, with a one-line error that names the fix."""

from __future__ import annotations

from client_sut.errors import UsageError


def load_tokenizer(name: str, *, use_fast: bool = True):
    """`use_fast=False` is how MLPerf's reference scoring loads it (transformers falls back to
    the fast tokenizer where a model has no slow one, as Llama 3 has not)."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name, use_fast=use_fast)
    except Exception as exc:  # transformers raises OSError, ValueError, hub errors...
        text = str(exc).strip()
        first_line = text.splitlines()[0] if text else type(exc).__name__
        raise UsageError(f"cannot load tokenizer {name!r} ({first_line}); pass --tokenizer with "
                         f"a local model folder or a Hugging Face name") from None
