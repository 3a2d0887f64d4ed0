"""The text of the files a submission holds beside LoadGen's logs (pure).

- accuracy.txt: what MLCommons' `language/llama3.1-8b/evaluation.py` prints, a blank line,
  "Results", a blank line, then its result dict: ROUGE values as strings (it formats them with
  an f-string), `gen_len` and `gen_num` as integers. Run under NumPy 2 that script prints
  `'gen_len': np.int64(...)`, which the checker's pattern does not read; here it is a plain int.
- the official truncation (tools/submission/truncate_accuracy_log.py): the accuracy log's
  sha256 appended to accuracy.txt as `hash=...`, the log cut to its first and last 4 KiB.
- TEST06's verify_accuracy.txt, in the lines compliance/TEST06/run_verification.py writes.
"""

from __future__ import annotations

import hashlib

from client_sut.accuracy.rouge import ROUGE_KEYS

VIEWABLE_BYTES = 4096


def accuracy_text(result: dict) -> str:
    printed = {key: str(result[key]) for key in ROUGE_KEYS}
    printed["gen_len"] = int(result["gen_len"])
    printed["gen_num"] = int(result["gen_num"])
    return f"\nResults\n\n{printed!r}\n"


def hash_line(accuracy_log: bytes) -> str:
    return f"\nhash={hashlib.sha256(accuracy_log).hexdigest()}\n"


def truncated_log(accuracy_log: bytes) -> bytes:
    if len(accuracy_log) < VIEWABLE_BYTES:
        return accuracy_log
    return accuracy_log[:VIEWABLE_BYTES] + b"\n\n...\n\n" + accuracy_log[-VIEWABLE_BYTES:]


def verification_text(audit: dict) -> str:
    checks = audit["checks"]
    first = "Skipped" if checks["first_token"] is None else str(checks["first_token"])
    verdict = "complete" if audit["passed"] else "failed"
    return (f"First token check pass: {first}\n"
            f"EOS check pass: {checks['eos']}\n"
            f"Sample length check pass: {checks['sample_length']}\n"
            f"TEST06 verification {verdict}\n")


def measurements_readme(scenario: str, commands: list[str], software: str) -> str:
    lines = [f"# Llama-3.1-8B {scenario}", "",
             f"Measured with client_sut ({software}): MLCommons LoadGen drives an async "
             f"streaming client against vLLM's OpenAI-compatible server.", "",
             "## How the runs were made", ""]
    lines += [f"    {command}" for command in commands] or ["    (runs made by the submitter)"]
    lines += ["", "`user.conf` beside this file is the LoadGen user.conf of these runs.", ""]
    return "\n".join(lines)
