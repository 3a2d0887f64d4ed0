"""What every typed result file does alike: read leniently, written whole."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec

from client_sut.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Stopped:
    """A server stopped answering, and the series of runs with it."""

    during: str  # the run under way
    reason: str


def read_typed(path: Path, from_json: Callable[[dict], T], command: str) -> T:
    """The file at PATH as its type; one clear error where it is none (it is user input)."""
    try:
        return from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, msgspec.ValidationError) as exc:
        raise UsageError(f"{path} is no {path.name} of `client-sut {command}` ({exc})") from None


def write_whole(path: Path, data: dict) -> None:
    """Whole or not at all: a reader never sees half a file."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
