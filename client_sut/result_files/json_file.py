"""What every typed result file does alike: written whole with every key, read leniently."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import msgspec

from client_sut.errors import UsageError

T = TypeVar("T", bound="ResultFile")


@dataclass(frozen=True, slots=True)
class Stopped:
    """A server stopped answering, and the series of runs with it."""

    during: str  # the run under way
    reason: str


class ResultFile:
    """A frozen dataclass that is one file in a command's output folder: `file_name`, written
    by `client-sut <command>`. A key an older file lacks takes its default; one it has that the
    type does not know is ignored."""

    __slots__ = ()
    file_name: str  # set by each subclass, as a plain class attribute (not a field)
    command: str

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls: type[T], data: dict) -> T:
        return msgspec.convert(data, cls)

    @classmethod
    def read(cls: type[T], folder: Path) -> T:
        """The file in FOLDER as its type; one clear error where it is none (it is user input)."""
        path = folder / cls.file_name
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, msgspec.ValidationError) as exc:
            raise UsageError(f"{path} is no {cls.file_name} of `client-sut {cls.command}` "
                             f"({exc})") from None

    def write(self, folder: Path) -> None:
        """Whole or not at all: a reader never sees half a file."""
        path = folder / self.file_name
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
