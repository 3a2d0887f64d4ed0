"""The exact ids a server left out of its stream, recovered from the bytes of its text.

llama.cpp's server sends no chunk for a token that ends inside a UTF-8 character: its bytes
come with the next chunk's text, and its id on no path at all (`process_token` in
tools/server/server-context.cpp holds text and id back together). Each chunk does carry the id
of the token that completed it and, asked with `timings_per_token`, the running count of
generated tokens. So the bytes the left-out tokens made are known exactly (a chunk's text less
what the earlier ids still owed, less its own token's bytes), and so is their number: where the
vocabulary splits those bytes into that many tokens in one way only, those are the ids the
model generated. Where it could be split more than one way, or a count is missing, nothing is
guessed: the caller falls back to tokenizing the whole text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

Piece = tuple[str, tuple[int, ...], int | None]  # a chunk's text, ids, running token count
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece's byte fallback
MAX_SPLITS = 10_000  # of one gap's bytes: far beyond a few bytes of one character


@functools.cache
def _byte_level_table() -> dict[str, int]:
    """GPT-2's byte-level alphabet (the printable stand-in of each byte), inverted: the table
    transformers converts byte-level tokenizers with."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}


class TokenBytes:
    """Each id's bytes, as the server's detokenizer writes them (special tokens: none)."""

    def __init__(self, tokenizer) -> None:
        vocab = tokenizer.get_vocab()
        special = set(tokenizer.all_special_ids)
        byte_level = any(token.startswith("Ġ") for token in vocab)
        table = _byte_level_table()
        self._bytes: dict[int, bytes] = {}
        for token, token_id in vocab.items():
            if token_id in special:
                self._bytes[token_id] = b""
            elif byte_level and all(char in table for char in token):
                self._bytes[token_id] = bytes(table[char] for char in token)
            elif match := _BYTE_TOKEN.fullmatch(token):
                self._bytes[token_id] = bytes([int(match[1], 16)])
            else:
                self._bytes[token_id] = token.replace("▁", " ").encode()
        self._ids: dict[bytes, list[int]] = {}
        for token_id, raw in self._bytes.items():
            if raw:
                self._ids.setdefault(raw, []).append(token_id)
        self._longest = max(map(len, self._ids), default=0)

    def of(self, token_id: int) -> bytes | None:
        return self._bytes.get(token_id)

    def split(self, gap: bytes, count: int) -> tuple[int, ...] | None:
        """The one way `gap` is `count` tokens of the vocabulary, or None (none, or several)."""
        found: list[tuple[int, ...]] = []

        def walk(start: int, left: int, path: tuple[int, ...]) -> None:
            if len(found) > 1 or len(found) + 1 > MAX_SPLITS:
                return
            if start == len(gap) or left == 0:
                if start == len(gap) and left == 0:
                    found.append(path)
                return
            for end in range(start + 1, min(len(gap), start + self._longest) + 1):
                ids = self._ids.get(gap[start:end])
                if ids:
                    if len(ids) > 1:  # two ids with the same bytes: which one is unknowable
                        found.extend([path, path])
                        return
                    walk(end, left - 1, path + (ids[0],))

        walk(0, count, ())
        return found[0] if len(found) == 1 else None

    def recover(self, pieces: Sequence[Piece]) -> list[int] | None:
        """Every generated id, in order, or None where one cannot be known for certain."""
        out: list[int] = []
        owed = b""  # bytes of ids already placed whose text has not come yet (a held stop word)
        counted = 0  # the server's running count at the previous chunk
        for text, ids, running in pieces:
            if running is None:
                return None
            missing = running - counted - len(ids)
            counted = running
            own = [self.of(token_id) for token_id in ids]
            if missing < 0 or None in own:
                return None
            tail = b"".join(own)
            raw = text.encode()
            if not raw:  # nothing released yet (EOS writes nothing; a stop word is held)
                if missing:
                    return None
                owed += tail
                out.extend(ids)
                continue
            # The text released now: what earlier ids owed, the left-out tokens, its own token.
            if not (raw.startswith(owed) and raw.endswith(tail)
                    and len(raw) >= len(owed) + len(tail)):
                return None
            gap = raw[len(owed):len(raw) - len(tail)]
            if missing:
                split = self.split(gap, missing)
                if split is None:
                    return None
                out.extend(split)
            elif gap:
                return None
            owed = b""
            out.extend(ids)
        return out
