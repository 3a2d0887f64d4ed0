"""Bad input: one line that names the problem and the fix, exit status 2, nothing sent.

Every case runs the real `client-sut run` entry point (in this process: none of them gets as
far as starting LoadGen) against real servers on 127.0.0.1.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from client_sut.accuracy.reference import Reference, ReferenceOutput, write_reference
from client_sut.cli import main
from tests.conftest import SHARED_DATA, EmitterProcess


@pytest.fixture(scope="module")
def emitter():
    process = EmitterProcess()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def short_context_emitter():
    process = EmitterProcess("--max-model-len", "600")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def locked_emitter():
    process = EmitterProcess("--api-key", "sk-test-not-a-real-key")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def plain_http_server(tmp_path_factory):
    """A real HTTP server that is not OpenAI-compatible (it serves files)."""
    folder = tmp_path_factory.mktemp("www")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                                "127.0.0.1", "--directory", str(folder)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    process.stdout.readline()  # "Serving HTTP on ..." once it listens
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def files(tmp_path) -> dict:
    bad_utf8 = tmp_path / "latin1.jsonl"
    bad_utf8.write_bytes(b'{"article": "caf\xe9", "highlights": "x"}\n')
    (tmp_path / "dict.json").write_text('{"input": "a", "output": "b"}')
    (tmp_path / "empty.json").write_text("[]")
    (tmp_path / "nokeys.jsonl").write_text('{"title": "t", "body": "b"}\n')
    (tmp_path / "bad.conf").write_text("*.Server.target_qps 5\n")
    (tmp_path / "a_file").write_text("")
    reference = tmp_path / "reference.json"
    write_reference(reference, Reference(
        model="m", weights_sha256="w", prompt_format="chat", dataset="d", dataset_sha256="s",
        max_new_tokens=128, min_new_tokens=1, eos_token_ids=(2,), implementation="greedy",
        versions={}, generate_seconds=1.0,
        outputs=(ReferenceOutput(0, (5, 2), "eos"), ReferenceOutput(1, (6, 2), "eos"))))
    one_long = tmp_path / "long.jsonl"
    one_long.write_text('{"article": "' + "word " * 2000 + '", "highlights": "h"}\n')
    return {"latin1": bad_utf8, "dict": tmp_path / "dict.json", "empty": tmp_path / "empty.json",
            "nokeys": tmp_path / "nokeys.jsonl", "badconf": tmp_path / "bad.conf",
            "file": tmp_path / "a_file", "long": one_long, "reference": reference}


# (case id, extra argv using {placeholders}, expected words in the error line)
CASES = [
    ("missing dataset", ["--dataset", "{tmp}/nope.jsonl"], "does not exist; pass --dataset"),
    ("unreadable dataset", ["--dataset", "{latin1}"], "cannot read dataset"),
    ("wrong JSON shape", ["--dataset", "{dict}"], "expected a list of records"),
    ("empty dataset", ["--dataset", "{empty}"], "has no samples"),
    ("records without the columns", ["--dataset", "{nokeys}"], "expected input/output"),
    ("unknown scenario", ["--scenario", "Batch"], "--scenario 'Batch' is not one of"),
    ("unknown mode", ["--mode", "quick"], "--mode 'quick' is not one of"),
    ("target qps zero", ["--target-qps", "0"], "--target-qps must be a number greater than 0"),
    ("target qps negative", ["--target-qps", "-3"], "--target-qps must be a number greater"),
    ("target qps not a number", ["--target-qps", "fast"], "invalid float value: 'fast'"),
    ("unreachable endpoint", ["--endpoint", "{closed}"], "cannot reach"),
    ("not OpenAI-compatible", ["--endpoint", "{plain}"], "an OpenAI-compatible server"),
    ("unknown model", ["--model", "gpt-9"], "does not serve model 'gpt-9'"),
    ("server wants a key", ["--endpoint", "{locked}"], "answered 401"),
    ("tokenizer not found", ["--tokenizer", "{tmp}/no-tokenizer"], "cannot load tokenizer"),
    ("user.conf missing", ["--user-conf", "{tmp}/none.conf"], "does not exist; pass --user-conf"),
    ("user.conf malformed", ["--user-conf", "{badconf}"], "is not `model.scenario.key = value`"),
    ("output not writable", ["--output-dir", "{file}/out"], "is not writable"),
    ("too many samples", ["--total-sample-count", "201"], "more than the 200 samples"),
    ("audit with accuracy", ["--audit", "TEST06", "--mode", "accuracy"], "performance-mode test"),
    ("chat with token prompts", ["--api", "chat", "--prompt-form", "tokens"],
     "sends the prompt as text"),
    ("qps for SingleStream", ["--scenario", "SingleStream", "--target-qps", "2"],
     "does not apply to SingleStream"),
    ("endpoint not a URL", ["--endpoint", "127.0.0.1:8000"], "is not an http(s) URL"),
    ("endpoint twice", ["--endpoint", "{emitter}", "--endpoint", "{emitter}"], "given twice"),
    ("API key variable unset", ["--api-key-env", "CLIENT_SUT_NO_SUCH_VAR"], "is not set"),
    ("prompt too long", ["--endpoint", "{short}", "--dataset", "{long}",
                         "--total-sample-count", "1"],
     "exceed the server's max_model_len 600"),
    ("timeout not positive", ["--gap-timeout", "0"], "--gap-timeout must be a number of seconds"),
    ("missing CA bundle", ["--ca-bundle", "{tmp}/ca.pem"], "--ca-bundle"),
    ("insecure and CA bundle", ["--insecure", "--ca-bundle", "{badconf}"], "keep one"),
    ("zero samples", ["--total-sample-count", "0"], "must be at least 1"),
    ("calibration not a calibrate.json", ["--calibration", "{badconf}"],
     "is not a calibrate.json"),
    ("reference in performance mode", ["--reference", "{badconf}"], "use it with --mode accuracy"),
    ("reference missing", ["--mode", "accuracy", "--reference", "{tmp}/none.json"],
     "compute one with `client-sut reference`"),
    ("not a reference file", ["--mode", "accuracy", "--reference", "{badconf}"],
     "is not a reference file"),
    ("reference too short", ["--mode", "accuracy", "--reference", "{reference}"],
     "lacks qsl_idx 2"),
    ("reference of another prompt format", ["--mode", "accuracy", "--reference", "{reference}",
                                            "--total-sample-count", "2"], "--prompt-format chat"),
    ("unknown prompt format", ["--prompt-format", "plain"], "invalid choice: 'plain'"),
]


@pytest.mark.parametrize("argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_before_sending(argv, expected, emitter, locked_emitter,
                                                        short_context_emitter, plain_http_server,
                                                        closed_port, tmp_path, demo_tokenizer,
                                                        capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    places = {k: str(v) for k, v in files(tmp_path).items()}
    places.update(tmp=str(tmp_path), emitter=emitter.url, locked=locked_emitter.url,
                  short=short_context_emitter.url, plain=plain_http_server, closed=closed_port)
    output_dir = tmp_path / "out"
    base = {"--endpoint": emitter.url, "--dataset": str(SHARED_DATA),
            "--tokenizer": str(demo_tokenizer), "--output-dir": str(output_dir),
            "--total-sample-count": "4"}
    extra = [a.format(**places) for a in argv]
    # A flag the case gives replaces the base one.
    args = [part for flag, value in base.items() if flag not in extra for part in (flag, value)]
    sent_before = len(emitter.log()) + len(short_context_emitter.log())
    try:
        status = main(["run", *args, *extra])
    except SystemExit as exc:  # argparse's own refusals
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("client-sut run: error:"), err
    assert expected in err[-1], err[-1]
    # No completion request was sent.
    assert len(emitter.log()) + len(short_context_emitter.log()) == sent_before
    assert not (output_dir / "mlperf_log_summary.txt").exists()  # LoadGen never started

