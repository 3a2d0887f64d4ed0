"""An accuracy verdict as the lines `run` and `evaluate` print."""

from __future__ import annotations

from pathlib import Path


def accuracy_lines(accuracy: dict) -> list[str]:
    # What the run was judged by: a partial set's gen_len target is scaled to its size.
    targets = accuracy.get("judged_targets", accuracy["targets"])
    checks = accuracy["checks"]
    lines = [f"  {'metric':<10} {'score':>12} {'target':>12}  ok"]
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len"):
        lines.append(f"  {key:<10} {accuracy[key]:>12,} {targets[key]:>12,}  "
                     f"{'yes' if checks[key] else 'NO'}")
    verdict = "PASSED" if accuracy["passed"] else "FAILED"
    if accuracy["category"] == "reference":
        reference = accuracy["reference"]
        ratios = ", ".join(f"{reference['ratios'][key] * 100:.1f}% of its {name}" for key, name in
                           (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"),
                            ("rougeLsum", "ROUGE-Lsum"), ("gen_len", "gen_len")))
        identical = accuracy["identical_outputs"]
        lines.append(f"  gen_num {accuracy['gen_num']:,}; accuracy {verdict} against the "
                     f"reference implementation ({reference['implementation']}): {ratios}; "
                     f"{identical['samples']} of {identical['of']} outputs identical to it")
    else:
        lines.append(f"  gen_num {accuracy['gen_num']:,}; accuracy {verdict} "
                     f"({accuracy['category']} targets: ROUGE >= 99%, gen_len within 90-110%)")
    outputs = accuracy.get("outputs")
    if outputs and outputs["tokens"]:
        tokens, finish = outputs["tokens"], outputs["finish"]
        lines.append(f"  outputs: {tokens['min']}-{tokens['max']} tokens (median {tokens['p50']}, "
                     f"mean {tokens['mean']:g}); ended at EOS {finish['eos']}, at the token "
                     f"limit {finish['length']}, otherwise {finish['other']}")
    lines += [f"  note: {note}" for note in accuracy["notes"]]
    return lines


def print_accuracy(accuracy: dict, output: Path) -> None:
    print("\n".join(accuracy_lines(accuracy) + [f"  written: {output}"]))
