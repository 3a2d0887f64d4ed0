"""The per-machine cache outside the checkout: what takes minutes to make (llama-server's build,
the real model's files) is made once per machine and shared by every clone, run and test."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "CLIENT_SUT_CACHE"


def cache_root() -> Path:
    """$CLIENT_SUT_CACHE, else client_sut in the user's cache folder."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "client_sut"


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One maker at a time per cache folder, across processes."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
