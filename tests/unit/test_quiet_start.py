"""The client needs no PyTorch, and says nothing of its absence."""

import os
import subprocess
import sys

from tests.conftest import REPO

WITHOUT_TORCH = """\
import sys
sys.modules["torch"] = None  # as in the client's image: tokenizers only
import client_sut.data.tokenization
from transformers import AutoTokenizer
"""


def test_no_pytorch_advice_is_printed_before_the_tools_own_output():
    env = {k: v for k, v in os.environ.items() if k != "TRANSFORMERS_NO_ADVISORY_WARNINGS"}
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "PyTorch" not in done.stderr
