"""The demo's `sla` and `sweep`, timed whole: how much of a series of runs is the runs' start.

Each `sla` probe and `sweep` point is a `client-sut run` process of its own, so what a run does
before its first request is paid once per run. This starts vLLM on CPU with the demo's tiny
random-weight model, as `make demo` does (vLLM on every core but the first, the client on the
first), and runs `client-sut sla` and `client-sut sweep` with the demo's own flags, from this
checkout and, with --baseline, from another one in turn, each against the same server. It prints
each command's wall time, its runs and what it answered (a search that takes another path takes
another time: compare like with like).

    python bench/bench_demo_series.py [--baseline DIR] [--repeats 1]

`--baseline DIR`: a checkout of another revision (`git worktree add DIR REV`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client_sut.result_files.sla import SlaResult  # noqa: E402
from client_sut.result_files.sweep import SweepResult  # noqa: E402
from server.demo import DEMO_SLA, DEMO_SWEEP, plan_cores, start_vllm  # noqa: E402
from server.demo_corpus import write_corpus  # noqa: E402
from server.demo_model import build  # noqa: E402


def timed(checkout: Path, command: str, endpoint: str, dataset: Path, output: Path,
          args: tuple[str, ...]) -> dict:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "client_sut", command, "--endpoint", endpoint,
                           "--dataset", str(dataset), "--output-dir", str(output), "--no-report",
                           *args], cwd=checkout, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.monotonic() - started
    if command == "sla":  # the types read the other checkout's files too (older keys)
        sla = SlaResult.read(output)
        runs = len(sla.start.points) + len(sla.probes) + len(sla.confirmation_attempts)
        answer = sla.answer_qps
    else:
        sweep = SweepResult.read(output)
        runs, answer = len(sweep.pilots) + len(sweep.points), sweep.verdict
    return {"wall_s": round(wall, 1), "exit": done.returncode, "runs": runs, "answer": answer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout, run in turn")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    checkouts = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build(work / "model")
        dataset = write_corpus(work / "demo_news.jsonl")
        cores = plan_cores(os.sched_getaffinity(0))
        group = start_vllm(model, cores, work / "logs", "the tiny random-weight model")
        try:
            endpoint = group.endpoints[0]
            for repeat in range(args.repeats):
                for command, flags in (("sla", DEMO_SLA), ("sweep", DEMO_SWEEP)):
                    for name, checkout in checkouts.items():
                        row = timed(checkout, command, endpoint, dataset,
                                    work / f"{name}-{command}-{repeat}", flags)
                        rows.append({"client": name, "command": command, **row})
                        print(json.dumps(rows[-1]), flush=True)
        finally:
            group.stop()
    print(f"{'client':<10} {'command':<8} {'wall s':>8} {'runs':>5} {'exit':>5}  answer")
    for row in rows:
        print(f"{row['client']:<10} {row['command']:<8} {row['wall_s']:>8} {row['runs']:>5} "
              f"{row['exit']:>5}  {row['answer']}")


if __name__ == "__main__":
    main()
