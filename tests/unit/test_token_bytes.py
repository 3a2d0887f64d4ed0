"""The ids llama.cpp's server leaves out of its stream, recovered from its text's bytes: a
stream made as its process_token makes one (a token that ends inside a UTF-8 character gets no
chunk; the next chunk's text carries its bytes), and the cases that must not be guessed."""

from transformers import AutoTokenizer

from client_sut.data.token_bytes import TokenBytes, _byte_level_table


def llama_cpp_stream(tokens: TokenBytes, ids: list[int]) -> list:
    """(text, ids, running count) per chunk, as llama-server streams them."""
    pieces, pending = [], b""
    for count, token_id in enumerate(ids, start=1):
        pending += tokens.of(token_id)
        try:
            text = pending.decode()
        except UnicodeDecodeError:
            continue  # incomplete: neither text nor id is sent
        pieces.append((text, (token_id,), count))
        pending = b""
    return pieces


def test_every_left_out_id_is_recovered(demo_tokenizer):
    tokenizer = AutoTokenizer.from_pretrained(demo_tokenizer)
    tokens = TokenBytes(tokenizer)
    text = "Zoë Müller met François Côté in Zürich — «très bien», 日本語 🎉."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = llama_cpp_stream(tokens, ids + [tokenizer.eos_token_id])
    assert sum(len(p[1]) for p in pieces) < len(ids)  # the small vocabulary splits characters
    assert tokens.recover(pieces) == ids + [tokenizer.eos_token_id]


def test_nothing_is_guessed_without_counts_or_with_text_that_does_not_fit(demo_tokenizer):
    tokenizer = AutoTokenizer.from_pretrained(demo_tokenizer)
    tokens = TokenBytes(tokenizer)
    ids = tokenizer("née", add_special_tokens=False)["input_ids"]
    pieces = llama_cpp_stream(tokens, ids)
    assert tokens.recover([(t, i, None) for t, i, _ in pieces]) is None  # no running count
    # An invalid byte the server replaced with U+FFFD: its bytes, and so its id, are gone.
    assert tokens.recover([("\ufffd", pieces[0][1], pieces[0][2] + 1)]) is None


class _Vocabulary:
    """A byte-level vocabulary of a few tokens: a, b, c, ab, bc."""

    all_special_ids: list[int] = []

    def get_vocab(self) -> dict[str, int]:
        return {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "Ġ": 5}


def test_a_split_is_taken_only_when_it_is_the_only_one():
    tokens = TokenBytes(_Vocabulary())
    assert tokens.split(b"abc", 3) == (0, 1, 2)
    assert tokens.split(b"abc", 2) is None  # ab+c and a+bc
    assert tokens.split(b"ab", 1) == (3,)
    assert tokens.split(b"abd", 2) is None  # no token has d


def test_the_byte_level_alphabet_maps_every_byte_once():
    table = _byte_level_table()
    assert sorted(table.values()) == list(range(256))
    assert table["Ġ"] == ord(" ") and table["Ċ"] == ord("\n")
