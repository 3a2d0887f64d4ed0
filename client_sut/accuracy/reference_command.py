"""`client-sut reference`: compute a reference implementation's outputs for a model without
published accuracy targets, the file `evaluate --reference` and `run --reference` judge by.

The file is reused while everything its outputs depend on is unchanged (the weights, the
samples, the prompt format, the generation settings): computing it costs seconds a sample.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from client_sut.config import PromptFormat
from client_sut.errors import EXIT_OK


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "reference", help="compute a reference implementation's outputs to judge accuracy by",
        description="Generate every sample's output with transformers' greedy generate on the "
                    "model's own weights (no server, no client), score it with MLPerf's ROUGE, "
                    "and write the reference file that `evaluate --reference` and `run --mode "
                    "accuracy --reference` judge a served model against (99% of its ROUGE, "
                    "gen_len within 90-110%).")
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="the model's Hugging Face folder (the weights the server serves)")
    parser.add_argument("--model-name", metavar="NAME",
                        help="how the file names the model (default: --model as given)")
    parser.add_argument("--dataset", required=True, metavar="PATH",
                        help="the dataset the runs use (qsl_idx = position in it)")
    parser.add_argument("--total-sample-count", type=int, metavar="N",
                        help="the first N samples (default: all)")
    parser.add_argument("--prompt-format", default=PromptFormat.OFFICIAL.value,
                        choices=[f.value for f in PromptFormat],
                        help="as the runs will use it (default official)")
    parser.add_argument("--output", type=Path, default=Path("reference.json"), metavar="PATH")
    parser.add_argument("--force", action="store_true",
                        help="compute again even if PATH holds this reference already")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from client_sut.accuracy.generate import dataset_sha256, generate_reference, weights_sha256
    from client_sut.accuracy.reference import outputs_key, read_reference, write_reference
    from client_sut.data.dataset import load_samples
    from client_sut.request import GenerationParams

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    samples = load_samples(args.dataset, args.total_sample_count)
    fmt = PromptFormat(args.prompt_format)
    if args.output.exists() and not args.force:
        cached = read_reference(args.output)
        params = GenerationParams()
        wanted = outputs_key(weights_sha256(args.model), fmt.value, dataset_sha256(samples),
                             params.max_tokens, params.min_tokens, len(samples))
        if cached.key() == wanted:
            say(f"reference {args.output} is up to date ({len(samples)} samples); --force "
                f"computes it again")
            print(_line(cached, args.output))
            return EXIT_OK
    say(f"computing the reference: {len(samples)} samples, {fmt.value} prompts, one at a time")
    reference = generate_reference(args.model, samples, dataset=args.dataset,
                                   prompt_format=fmt, progress=say, name=args.model_name)
    write_reference(args.output, reference)
    print(_line(reference, args.output))
    return EXIT_OK


def _line(reference, path: Path) -> str:
    scores = reference.scores
    finishes = sum(1 for o in reference.outputs if o.finish == "eos")
    return (f"reference {path}: {len(reference.outputs)} samples, ROUGE-1/2/L/Lsum "
            f"{scores['rouge1']:.2f}/{scores['rouge2']:.2f}/{scores['rougeL']:.2f}/"
            f"{scores['rougeLsum']:.2f}, gen_len {scores['gen_len']:,}, {finishes} ended at EOS; "
            f"{reference.generate_seconds:g} s to generate")
