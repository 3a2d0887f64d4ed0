"""`client-sut evaluate`: an accuracy log scored with ROUGE as MLPerf does, and judged."""

from __future__ import annotations

import argparse
from pathlib import Path

from client_sut.accuracy.rouge import DTYPES, TARGETS
from client_sut.errors import EXIT_FAILED, EXIT_OK

def add_parser(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="score an mlperf_log_accuracy.json with ROUGE, as MLPerf does",
        description="Score an MLPerf accuracy log (from any harness) against the dataset's "
                    "reference summaries; writes accuracy.json beside the log.")
    evaluate.add_argument("--accuracy-log", type=Path, required=True, metavar="PATH")
    evaluate.add_argument("--dataset", required=True, metavar="PATH",
                          help="the dataset the run used (qsl_idx = position in it)")
    evaluate.add_argument("--tokenizer", required=True, metavar="PATH_OR_NAME")
    evaluate.add_argument("--dtype", choices=sorted(DTYPES), default="int32",
                          help="token id type in the log (MLCommons' reference SUT logs int64)")
    evaluate.add_argument("--targets", choices=sorted(TARGETS), default="datacenter")
    evaluate.add_argument("--reference", type=Path, metavar="PATH",
                          help="judge against this reference implementation's outputs "
                               "(client-sut reference) instead of --targets: each ROUGE at "
                               "least 99%% of the reference's, gen_len within 90-110%%")
    evaluate.add_argument("--output", type=Path, metavar="PATH",
                          help="where to write accuracy.json (default: beside the log)")
    evaluate.add_argument("--workers", type=int, metavar="N",
                          help="scoring processes (default: every core)")
    evaluate.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from client_sut.accuracy.evaluate import evaluate_file
    from client_sut.accuracy.summary import print_accuracy

    result, output = evaluate_file(args.accuracy_log, args.dataset, args.tokenizer,
                                   dtype=args.dtype, category=args.targets, output=args.output,
                                   workers=args.workers, reference_path=args.reference)
    print_accuracy(result, output)
    return EXIT_OK if result["passed"] else EXIT_FAILED
