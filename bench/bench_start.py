"""How long a run takes to start: process start to its first request, with a real-size tokenizer.

Every `sla` probe, `sweep` point and `submission` run is a process of its own, so what a run does
before its first request is paid again and again. This starts `client-sut run` (Offline, one
query, no warm-up, the token cache already filled by a first run) against the loopback emitter
and takes the time from the process's start to the emitter's arrival of its first request (both
on CLOCK_MONOTONIC), and to the process's exit. The tokenizer is built here with Llama 3's size:
a byte-level BPE of 128,256 tokens (the merges of the 200 articles' most frequent pairs, then
made-up pairs of existing tokens up to the size), saved as a fast tokenizer, so that loading it costs
what loading Llama 3's costs. The demo's small tokenizer is timed beside it.

    python bench/bench_start.py [--repeats 5] [--baseline DIR]

`--baseline DIR`: the same runs with client_sut from another checkout (`git worktree add DIR
REV`), alternating with this one, so a change is measured before and after on one machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_streams import DATA  # noqa: E402

LLAMA3_VOCAB = 128_256
EMITTER_ARGS = ("--first-token-ms", "1", "--gap-ms", "1", "--output-tokens", "4")


def build_large_tokenizer(out_dir: Path) -> None:
    """A byte-level BPE of LLAMA3_VOCAB tokens: the 200 articles' BPE, grown with made-up merges
    (each a pair of existing tokens) until it has Llama 3's size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [json.loads(line)["article"] for line in DATA.read_text().splitlines()]
    special = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trained.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=LLAMA3_VOCAB, special_tokens=special, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(trained.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokens = [t for t in sorted(vocab, key=vocab.get) if t not in special]
    for left, right in itertools.product(tokens, repeat=2):  # made-up pairs of tokens that exist
        if len(vocab) >= LLAMA3_VOCAB:
            break
        if left + right not in vocab:
            vocab[left + right] = len(vocab)
            merges.append((left, right))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", vocab[special[0]])])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=special[0],
                            eos_token=special[2]).save_pretrained(out_dir)


def one_run(checkout: Path, emitter, tokenizer: Path, output: Path) -> tuple[float, float]:
    """(seconds to the first request, seconds to exit) of one run from `checkout`."""
    before = len(emitter.log())
    started_ns = time.perf_counter_ns()
    run = subprocess.run(
        [sys.executable, "-m", "client_sut", "run", "--endpoint", emitter.url, "--tokenizer",
         str(tokenizer), "--dataset", str(DATA), "--scenario", "Offline", "--duration", "0.1",
         "--min-query-count", "1", "--warmup", "0", "--no-report", "--progress", "none",
         "--token-cache", str(output / "tokens.cache"), "--output-dir", str(output)],
        cwd=checkout, capture_output=True, text=True)
    exited_ns = time.perf_counter_ns()
    if run.returncode not in (0, 1):  # 1: too short for LoadGen's VALID, as such a run is
        raise SystemExit(f"the run from {checkout} failed: {run.stderr[-2000:]}")
    first = emitter.log()[before]["arrival_ns"]
    return (first - started_ns) / 1e9, (exited_ns - started_ns) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout, run alternately")
    args = parser.parse_args()
    from client_sut.servers.emitter import EmitterProcess
    from server.demo_model import build_tokenizer

    checkouts = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_tokenizer(work / "small")
        started = time.perf_counter()
        build_large_tokenizer(work / "large")
        print(f"built the {LLAMA3_VOCAB:,}-token tokenizer in {time.perf_counter() - started:.1f}"
              f" s ({(work / 'large' / 'tokenizer.json').stat().st_size / 1e6:.1f} MB)")
        emitter = EmitterProcess(*EMITTER_ARGS)
        try:
            times: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for name, checkout in checkouts.items():  # fills each token cache
                for size in ("small", "large"):
                    one_run(checkout, emitter, work / size, work / f"{name}-{size}")
            for _ in range(args.repeats):
                for size in ("small", "large"):
                    for name, checkout in checkouts.items():
                        times.setdefault((name, size), []).append(
                            one_run(checkout, emitter, work / size, work / f"{name}-{size}"))
        finally:
            emitter.stop()
    print(f"{'client':<10} {'tokenizer':<10} {'to first request s (median, min-max)':>38} "
          f"{'to exit s (median)':>20}")
    for (name, size), runs in sorted(times.items()):
        first = [f for f, _ in runs]
        print(f"{name:<10} {size:<10} {statistics.median(first):>20.3f} ({min(first):.3f}-"
              f"{max(first):.3f}) {statistics.median(e for _, e in runs):>20.3f}")


if __name__ == "__main__":
    main()
