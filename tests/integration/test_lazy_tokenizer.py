"""A run loads the tokenizer only where it needs it: with every prompt's ids in the token cache
and a server that streams ids, never (its start is seconds shorter with a tokenizer of Llama 3's
size); against a server that sends text only, before anything is measured."""

from __future__ import annotations

import shutil

from tests.conftest import SHARED_DATA

FAST = ("--first-token-ms", "1", "--gap-ms", "1", "--output-tokens", "4")
OFFLINE = ("--scenario", "Offline", "--duration", "0.1", "--min-query-count", "8",
           "--total-sample-count", "8")


def test_a_run_whose_ids_are_cached_never_loads_the_tokenizer(start_emitter, run_cli,
                                                               demo_tokenizer, tmp_path):
    tokenizer = tmp_path / "tokenizer"
    shutil.copytree(demo_tokenizer, tokenizer)
    cache = tmp_path / "tokens.cache"
    ids_emitter = start_emitter(*FAST)
    args = ("--tokenizer", str(tokenizer), "--dataset", str(SHARED_DATA), "--token-cache",
            str(cache), *OFFLINE)
    first = run_cli("--endpoint", ids_emitter.url, *args)
    assert first.results["client"]["errors"] == 0, first.stderr  # (too short for VALID)
    shutil.rmtree(tokenizer)  # gone: a run that tried to load it would fail
    again = run_cli("--endpoint", ids_emitter.url, *args)
    assert again.returncode != 2, again.stderr
    assert again.results["client"]["requests"] == 8 and again.results["client"]["errors"] == 0

    text_only = start_emitter(*FAST, "--text-only")  # its answers must be tokenized
    refused = run_cli("--endpoint", text_only.url, *args)
    assert refused.returncode == 2, refused.stderr
    assert "cannot load tokenizer" in refused.stderr
    assert len(text_only.log()) == 1  # the dialect probe only: nothing measured
