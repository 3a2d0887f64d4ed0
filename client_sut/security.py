"""Credentials and transport security: the API key and TLS verification.

The key is read from an environment variable (OPENAI_API_KEY unless --api-key-env names
another) or a file, sent only as an Authorization header, and never written anywhere: every
message that could carry text from a server passes through `redact` before it is kept.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from client_sut.errors import UsageError

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    ca_bundle: Path | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.verify_tls:
            return False
        if self.ca_bundle is None:
            return True  # aiohttp's default: verify against the system's trust store
        try:
            return ssl.create_default_context(cafile=str(self.ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot use --ca-bundle {self.ca_bundle} ({exc}); give a PEM "
                             f"file of trusted certificates") from None

    def redact(self, text: str) -> str:
        return text.replace(self.api_key, REDACTED) if self.api_key else text


def resolve_credentials(*, key_env: str | None, key_file: Path | None, insecure: bool,
                        ca_bundle: Path | None) -> Credentials:
    if key_env and key_file:
        raise UsageError("--api-key-env and --api-key-file both give a key; keep one")
    if insecure and ca_bundle:
        raise UsageError("--insecure turns TLS verification off, --ca-bundle configures it; "
                         "keep one")
    if ca_bundle is not None and not ca_bundle.is_file():
        raise UsageError(f"--ca-bundle {ca_bundle} does not exist")
    key = None
    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read --api-key-file {key_file} ({exc.strerror})") from None
        if not key:
            raise UsageError(f"--api-key-file {key_file} is empty")
    elif key_env:
        key = os.environ.get(key_env)
        if not key:
            raise UsageError(f"--api-key-env {key_env}: that environment variable is not set")
    else:
        key = os.environ.get(DEFAULT_KEY_ENV) or None
    return Credentials(api_key=key, verify_tls=not insecure, ca_bundle=ca_bundle)
