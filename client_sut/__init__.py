"""client_sut: an MLPerf-grade benchmark client for LLM deployments."""

__version__ = "0.1.0"
