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


class LazyTokenizer:
    """A tokenizer loaded the first time it is used: a run whose prompts are all in the token
    cache, against servers that stream their ids, never needs it, and loading one of Llama 3's
    size (with transformers' import) is seconds of every run's start (bench/bench_start.py).
    Used as the tokenizer itself: every attribute and call goes to the loaded one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loaded = None

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self):
        """The tokenizer, loaded now if it was not (a UsageError where it cannot be)."""
        if self._loaded is None:
            self._loaded = load_tokenizer(self.name)
        return self._loaded

    def __call__(self, *args, **kwargs):
        return self.load()(*args, **kwargs)

    def __getattr__(self, attribute: str):
        return getattr(self.load(), attribute)
