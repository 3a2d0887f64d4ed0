"""Which source each token figure used, and how far the sources disagreed: pure.

A server may give three counts of a response: its usage (`completion_tokens`), the ids it
streamed, and, where it streams text only, the reference tokenizer's ids of the whole
concatenated text (`add_special_tokens=False`, never per chunk, never max_tokens). Output token
counts (and with them TPOT and tokens/s) take the usage where there is one, else the ids; the
accuracy log holds the server's ids where it gave them all, else the reference tokenizer's:
llama.cpp's server sends no id for a token that ends inside a UTF-8 character (its bytes come in
the next chunk's text): those ids are recovered exactly from the text's bytes and its running
count of tokens (data/token_bytes.py), and only where that cannot be done for certain is the
whole text tokenized instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from client_sut.records import RequestRecord, TokenIdSource


def _disagreement(pairs: Iterable[tuple[int, int]]) -> dict:
    pairs = list(pairs)
    gaps = [abs(a - b) for a, b in pairs if a != b]
    return {"compared": len(pairs), "disagreed": len(gaps), "max_difference": max(gaps, default=0),
            "total_difference": sum(gaps)}


def token_accounting(records: Sequence[RequestRecord]) -> dict:
    """results.json `client.token_accounting`, over the requests that did not fail."""
    ok = [r for r in records if r.ok]
    with_usage = [r for r in ok if r.server_completion_tokens is not None]
    server_ids = [r for r in ok if r.token_id_source is TokenIdSource.SERVER]
    recovered = [r for r in ok if r.token_id_source is TokenIdSource.RECOVERED]
    reference = [r for r in ok if r.token_id_source.retokenized]
    incomplete = [r for r in ok if r.token_id_source is TokenIdSource.IDS_MISSING]
    return {
        "output_tokens": f"the server's usage count ({len(with_usage)} requests), else the count "
                         f"of its ids ({len(ok) - len(with_usage)})",
        "tpot_and_tokens_per_second": "the output token count above, over the first to the "
                                      "last token-bearing event",
        "accuracy_log_ids": f"the server's own ids ({len(server_ids)} requests), with the ids "
                            f"it left out recovered exactly from its text's bytes "
                            f"({len(recovered)}), else the reference tokenizer over the whole "
                            f"text ({len(reference)}, of which {len(incomplete)} where the "
                            f"server's ids fell short of its count)",
        "requests": {"with_usage": len(with_usage), "with_server_ids": len(server_ids),
                     "server_ids_recovered": len(recovered),
                     "reference_tokenizer": len(reference),
                     "server_ids_incomplete": len(incomplete)},
        "disagreements": {
            "usage_vs_server_ids": _disagreement(
                (r.server_completion_tokens, len(r.token_ids)) for r in server_ids + recovered
                if r.server_completion_tokens is not None),
            "usage_vs_reference_tokenizer": _disagreement(
                (r.server_completion_tokens, len(r.token_ids)) for r in reference
                if r.server_completion_tokens is not None),
        },
    }
