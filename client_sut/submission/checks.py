"""The checks MLCommons' checker does not make (pure). Found by reading and running it:

- it takes a run whose summary says INVALID (it reads the requested min_duration, not whether
  the run lasted that long);
- it judges an Interactive folder by the Server limits (LoadGen's effective scenario is Server);
- it counts LoadGen errors in a detail log only under --submission-exceptions, so by default an
  error (a second FromConfig, a run cut short by max_duration) passes;
- it checks seeds and min_duration in the performance log only;
- TEST06's script compares EOS ids with a string, so its EOS check always passes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from client_sut.accuracy.audit import verify_test06
from client_sut.accuracy.rouge import ROUGE_KEYS
from client_sut.analysis.failures import failed_requests
from client_sut.analysis.loadgen_logs import LoadGenLog
from client_sut.config import OFFICIAL_LATENCY_LIMITS, OFFICIAL_MIN_DURATION_S, Scenario

# LoadGen's official seeds for v6.x, as the mlcommons-loadgen 6.0.16+ wheel's mlperf.conf has them.
OFFICIAL_SEEDS = {"qsl_rng_seed": 2085463073848966840,
                  "sample_index_rng_seed": 2747215439041700203,
                  "schedule_rng_seed": 16159082839903944936}
NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Finding:
    scenario: str
    check: str
    message: str


@dataclass(frozen=True, slots=True)
class ScenarioFiles:
    """What the checks read from one scenario's folder (None: the file is missing)."""
    scenario: str
    performance_summary: str | None
    logs: Mapping[str, LoadGenLog]  # performance, accuracy, TEST06: their detail logs
    accuracy_txt: str | None
    test06_rows: Sequence[dict] | None
    test06_verify_txt: str | None


def summary_valid(files: ScenarioFiles) -> list[Finding]:
    summary = files.performance_summary
    if summary is None:
        return [Finding(files.scenario, "summary", "performance/run_1/mlperf_log_summary.txt "
                                                   "is missing")]
    if re.search(r"^Result is : VALID\s*$", summary, re.MULTILINE):
        return []
    unmet = [line.split(":")[0].strip() for line in summary.splitlines()
             if re.search(r":\s*NO\s*$", line)]
    return [Finding(files.scenario, "summary",
                    "the performance summary says INVALID" +
                    (f" ({', '.join(unmet)}: NO)" if unmet else ""))]


# LoadGen's words for a sample reported with one token (results.json client.one_token_answers).
ONE_TOKEN_ERROR = "Number of tokens need to be greater than 1"


def loadgen_errors(files: ScenarioFiles) -> list[Finding]:
    """Each LoadGen error in any detail log; the checker rejects an accuracy log with any. The
    one-token answers' errors are counted in one finding that names the cause."""
    findings = []
    for kind, log in files.logs.items():
        single = sum(1 for error in log.errors if ONE_TOKEN_ERROR in error)
        if single:
            findings.append(Finding(
                files.scenario, "loadgen_errors",
                f"{kind} detail log: {single} LoadGen errors '{ONE_TOKEN_ERROR}': answers of a "
                f"single token (an EOS first: a server that ignores min_tokens 1); see "
                f"results.json client.one_token_answers"))
        findings += [Finding(files.scenario, "loadgen_errors",
                             f"{kind} detail log: LoadGen error {error}")
                     for error in log.errors if ONE_TOKEN_ERROR not in error]
    return findings


def official_settings(files: ScenarioFiles) -> list[Finding]:
    findings = []
    for kind, log in files.logs.items():
        for name, official in OFFICIAL_SEEDS.items():
            found = log.values.get(f"effective_{name}")
            if found != official:
                findings.append(Finding(files.scenario, "seeds",
                                        f"{kind} run used {name} {found}, not the official "
                                        f"{official}"))
    performance = files.logs.get("performance")
    if performance is not None:
        found = performance.values.get("effective_min_duration_ms")
        if not isinstance(found, int) or found < OFFICIAL_MIN_DURATION_S * 1000:
            findings.append(Finding(files.scenario, "min_duration",
                                    f"performance run's min_duration is {found} ms, not the "
                                    f"official {OFFICIAL_MIN_DURATION_S * 1000}"))
    return findings


def latency_limits(files: ScenarioFiles) -> list[Finding]:
    """A Server or Interactive folder holds a run judged by that scenario's own limits."""
    try:
        scenario = Scenario(files.scenario)
    except ValueError:
        return [Finding(files.scenario, "scenario", f"{files.scenario} is not a scenario of "
                                                    f"Llama-3.1-8B")]
    performance = files.logs.get("performance")
    if performance is None:
        return []
    ran = performance.values.get("effective_scenario")
    if ran != scenario.loadgen_name:
        return [Finding(files.scenario, "scenario",
                        f"the performance run is LoadGen's {ran}, not {scenario.loadgen_name}")]
    official = OFFICIAL_LATENCY_LIMITS.get(scenario)
    if official is None:
        return []
    ttft = performance.values.get("requested_server_ttft_latency")
    tpot = performance.values.get("requested_server_tpot_latency")
    if (ttft, tpot) == (official.ttft_ms * NS_PER_MS, official.tpot_ms * NS_PER_MS):
        return []
    shown = [f"{v / NS_PER_MS:g}" if isinstance(v, (int, float)) else str(v) for v in (ttft, tpot)]
    return [Finding(files.scenario, "latency_limits",
                    f"the run was judged by TTFT {shown[0]} ms / TPOT {shown[1]} ms, not "
                    f"{scenario.value}'s {official.ttft_ms:g} / {official.tpot_ms:g} ms")]


def accuracy_txt(files: ScenarioFiles) -> list[Finding]:
    def finding(message: str) -> list[Finding]:
        return [Finding(files.scenario, "accuracy_txt", message)]

    text = files.accuracy_txt
    if text is None:
        return finding("accuracy/accuracy.txt is missing")
    results = next((line for line in text.splitlines() if line.startswith("{")), None)
    if results is None:
        return finding("accuracy.txt holds no result dict as evaluation.py prints it")
    try:
        values = ast.literal_eval(results)
    except (ValueError, SyntaxError):
        return finding(f"accuracy.txt's result is not plain literals (e.g. np.int64(...)): "
                       f"the checker cannot read it: {results[:120]}")
    findings = []
    for key in ROUGE_KEYS:
        if not (isinstance(values.get(key), str) and re.fullmatch(r"[\d.]+", values[key])):
            findings += finding(f"{key} is {values.get(key)!r}, not a number in a string")
    for key in ("gen_len", "gen_num"):
        if type(values.get(key)) is not int:
            findings += finding(f"{key} is {values.get(key)!r}, not an integer")
    if not re.search(r"^hash=[0-9a-f]{64}$", text, re.MULTILINE):
        findings += finding("accuracy.txt has no hash= line of the truncated accuracy log")
    return findings


def test06(files: ScenarioFiles, eos_token_id: int | None) -> list[Finding]:
    def finding(message: str) -> list[Finding]:
        return [Finding(files.scenario, "TEST06", message)]

    if files.test06_rows is None or files.test06_verify_txt is None:
        return finding("TEST06/verify_accuracy.txt or TEST06/accuracy/mlperf_log_accuracy.json "
                       "is missing")
    if "TEST06 verification complete" not in files.test06_verify_txt:
        return finding("TEST06/verify_accuracy.txt does not say the verification passed")
    if eos_token_id is None:
        return finding("no EOS token id is known to check TEST06's EOS rule with")
    # Offline reports no first token; every other scenario does.
    audit = verify_test06(files.test06_rows, eos_token_id=eos_token_id,
                          check_first_token=files.scenario != Scenario.OFFLINE.value)
    return [] if audit["passed"] else finding(
        f"TEST06 fails with integer EOS id {eos_token_id}: {audit['checks']}")


def check_scenario(files: ScenarioFiles, eos_token_id: int | None) -> list[Finding]:
    return [*summary_valid(files), *loadgen_errors(files), *official_settings(files),
            *latency_limits(files), *accuracy_txt(files), *test06(files, eos_token_id)]


def failed_runs(results: Mapping[tuple[str, str], dict]) -> list[Finding]:
    """Runs whose requests failed, per (scenario, kind of run) -> its results.json: LoadGen's
    logs do not know of them, so neither does MLCommons' checker."""
    return [Finding(scenario, "failed_requests", f"{kind} run: {note}")
            for (scenario, kind), run in results.items()
            if (note := failed_requests(run["client"], run["endpoints"]))]
