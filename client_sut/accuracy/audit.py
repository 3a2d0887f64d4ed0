"""MLPerf compliance TEST06: LoadGen's audit settings, and the three checks on the responses.

LoadGen reads `audit.config` and logs a sample of responses to mlperf_log_accuracy.json during
a performance run. The checks, as compliance/TEST06/run_verification.py makes them:
- first token: the `token_data` reported at the first token equals the start of `data`
  (not in Offline, which reports no first token);
- EOS: at most one trailing EOS token, unless the whole output is exactly two EOS tokens;
- sample length: `len(data) == token_count`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from client_sut.accuracy.rouge import decode_ids

AUDITS = ("TEST06",)


def audit_config_path(name: str) -> Path:
    return Path(str(resources.files("client_sut.loadgen_configs") / name / "audit.config"))


def first_token_ok(row: dict, dtype: str) -> bool:
    data, first = decode_ids(row["data"], dtype), decode_ids(row["token_data"], dtype)
    return len(first) > 0 and all(a == b for a, b in zip(data, first))


def eos_ok(row: dict, dtype: str, eos_token_id: int) -> bool:
    data = decode_ids(row["data"], dtype)
    trailing = 0
    for token in data[::-1]:
        if token != eos_token_id:
            break
        trailing += 1
    return trailing <= 1 or (trailing == 2 and len(data) == 2)


def length_ok(row: dict, dtype: str) -> bool:
    return len(decode_ids(row["data"], dtype)) == int(row["token_count"])


def verify_test06(rows: Sequence[dict], *, eos_token_id: int, check_first_token: bool,
                  dtype: str = "int32") -> dict:
    failures: dict[str, list[int]] = {"first_token": [], "eos": [], "sample_length": []}
    for row in rows:
        if check_first_token and not first_token_ok(row, dtype):
            failures["first_token"].append(row["qsl_idx"])
        if not eos_ok(row, dtype, eos_token_id):
            failures["eos"].append(row["qsl_idx"])
        if not length_ok(row, dtype):
            failures["sample_length"].append(row["qsl_idx"])
    checks = {name: not failed for name, failed in failures.items()}
    if not check_first_token:
        checks["first_token"] = None  # not applicable: Offline reports no first token
    return {
        "test": "TEST06",
        "passed": bool(rows) and all(v is not False for v in checks.values()),
        "checks": checks,
        "samples_checked": len(rows),
        "failed_qsl_idx": {k: v[:10] for k, v in failures.items() if v},
        "eos_token_id": eos_token_id,
    }
