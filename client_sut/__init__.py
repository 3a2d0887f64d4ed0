"""client_sut: an MLPerf-grade benchmark client for LLM deployments."""

import os

# The client needs tokenizers, never PyTorch: transformers' advice that PyTorch was not found
# (printed at its import, before any of our output) says nothing about what the tool does.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

__version__ = "0.1.0"
