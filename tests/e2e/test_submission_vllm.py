"""`client-sut submission` end to end on real vLLM on CPU (the demo model): it makes the
Offline runs itself, assembles open/, runs MLCommons' checker and the extra checks.

Short runs: 8 samples, so the checker wants the benchmark's 13,368-sample performance QSL and
the summary is INVALID (600 s not served); the system description's framework and weights come
from the servers themselves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.integration.test_submission import CHECKER
from tests.integration.test_submission import SYSTEM_FILE as INTEGRATION_SYSTEM_FILE

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not CHECKER.is_dir(),
                                 reason=f"MLCommons' checker is not at {CHECKER}")]

# The integration test's description, less the framework: the servers say what they run.
SYSTEM_FILE = INTEGRATION_SYSTEM_FILE.replace('framework = "client_sut emitter"\n', "")


def test_submission_flow_on_real_vllm(vllm, demo_data, tmp_path):
    group, model_dir = vllm
    (tmp_path / "system.toml").write_text(SYSTEM_FILE)
    # 8 samples issued, none padded: Offline's expected rate times 600 s stays under 8.
    (tmp_path / "user.conf").write_text("*.Offline.target_qps = 0.01\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "client_sut", "submission", "--system-file",
         str(tmp_path / "system.toml"), "--checker", str(CHECKER), "--division", "open",
         "--scenario", "Offline", "--output-dir", str(out), "--user-conf",
         str(tmp_path / "user.conf"), "--skip-dataset-size-check",
         "--", "--endpoint", group.endpoints[0], "--dataset", str(demo_data),
         "--total-sample-count", "8", "--min-query-count", "8"],
        capture_output=True, text=True, timeout=900, cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads((out / "submission.json").read_text())
    # Everything the checker objects to is the short run's subset QSL.
    for error in report["official_checker"]["errors"]:
        assert re.search(r"performance_sample_count, found 8, needs to be >= 13368|^Some "
                         r"performance checks Checks failed|^NoResults |^SUMMARY: submission has "
                         r"errors", error), error
    assert {(f["scenario"], f["check"]) for f in report["extra_checks"]["findings"]} == {
        ("Offline", "summary")}
    scenario = out / "submission/open/TestOrg/results/emitter_cpu/llama3.1-8b/Offline"
    assert "client-sut run" in (scenario / "README.md").read_text()
    assert (scenario / "TEST06/verify_accuracy.txt").read_text().endswith(
        "TEST06 verification complete\n")
    system = json.loads((out / "submission/open/TestOrg/systems/emitter_cpu.json").read_text())
    assert system["framework"].startswith("vLLM ")
    measurements = json.loads((scenario / "measurements.json").read_text())
    assert measurements["starting_weights_filename"] == str(model_dir)
