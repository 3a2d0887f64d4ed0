"""The API key reaches the server and nothing else; TLS is verified unless told otherwise."""

from __future__ import annotations

import datetime
import ipaddress

import pytest

from tests.conftest import SHARED_DATA

KEY = "sk-client-sut-test-3f9a1c7e5b"
QUICK = ("--scenario", "Offline", "--duration", "0.05", "--min-query-count", "8",
         "--total-sample-count", "8")


def everything_written(run) -> str:
    texts = [run.stdout, run.stderr]
    texts += [p.read_text(errors="replace") for p in run.output_dir.rglob("*") if p.is_file()]
    return "\n".join(texts)


@pytest.fixture
def with_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def test_key_from_environment_is_sent_and_never_written(start_emitter, demo_tokenizer, run_cli,
                                                        with_key):
    emitter = start_emitter("--api-key", KEY, "--output-tokens", "8")
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), *QUICK)
    assert run.results["client"]["errors"] == 0, run.stderr  # the server accepted the key
    assert KEY not in everything_written(run)


def test_key_from_a_file_and_a_named_variable(start_emitter, demo_tokenizer, run_cli, tmp_path,
                                              monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    emitter = start_emitter("--api-key", KEY, "--output-tokens", "8")
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n")
    by_file = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer),
                      "--dataset", str(SHARED_DATA), "--api-key-file", str(key_file), *QUICK)
    assert by_file.results["client"]["errors"] == 0, by_file.stderr
    monkeypatch.setenv("MY_VLLM_KEY", KEY)
    by_env = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer),
                     "--dataset", str(SHARED_DATA), "--api-key-env", "MY_VLLM_KEY", *QUICK)
    assert by_env.results["client"]["errors"] == 0, by_env.stderr
    assert KEY not in everything_written(by_file) + everything_written(by_env)


def test_a_server_that_echoes_the_key_in_errors_is_redacted(start_emitter, demo_tokenizer,
                                                            run_cli, with_key):
    emitter = start_emitter("--api-key", KEY, "--fault", "echo_auth", "--output-tokens", "8")
    run = run_cli("--endpoint", emitter.url, "--tokenizer", str(demo_tokenizer), "--dataset",
                  str(SHARED_DATA), *QUICK)
    assert run.returncode == 1
    failed = [r for r in run.requests() if r["error"]]
    assert failed and all("[redacted]" in r["error"]["message"] for r in failed)
    assert KEY not in everything_written(run)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 that is its own CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client-sut test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_emitter(start_emitter, certificate):
    cert_path, key_path = certificate
    return start_emitter("--tls-cert", str(cert_path), "--tls-key", str(key_path),
                         "--output-tokens", "8")


def test_untrusted_certificate_is_refused_by_default(tls_emitter, demo_tokenizer, run_cli,
                                                     monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert tls_emitter.url.startswith("https://")
    run = run_cli("--endpoint", tls_emitter.url, "--tokenizer", str(demo_tokenizer),
                  "--dataset", str(SHARED_DATA), *QUICK)
    assert run.returncode == 2
    assert "not trusted" in run.stderr and "--ca-bundle" in run.stderr
    assert len(tls_emitter.log()) == 0


def test_ca_bundle_verifies_and_insecure_skips(tls_emitter, certificate, demo_tokenizer,
                                               run_cli):
    trusted = run_cli("--endpoint", tls_emitter.url, "--tokenizer", str(demo_tokenizer),
                      "--dataset", str(SHARED_DATA), "--ca-bundle", str(certificate[0]), *QUICK)
    assert trusted.results["client"]["errors"] == 0, trusted.stderr
    assert trusted.results["tls_verification"] is True
    insecure = run_cli("--endpoint", tls_emitter.url, "--tokenizer", str(demo_tokenizer),
                       "--dataset", str(SHARED_DATA), "--insecure", *QUICK)
    assert insecure.results["client"]["errors"] == 0, insecure.stderr
    assert insecure.results["tls_verification"] is False
