"""llama.cpp's `llama-server`, built here from source: a second real server for the tests.

No prebuilt llama.cpp can be fetched on these machines, but the llama-cpp-python sdist ships
llama.cpp's whole source (`vendor/llama.cpp`). `build_server()` downloads that sdist with the
machine's own pip configuration, builds only the `llama-server` target with cmake and the system
compiler (about 12 minutes on 2 cores), and keeps the binary and the source in a cache outside
the checkout, keyed by the sdist's version: a fresh machine builds once, later runs reuse it.
`convert()` turns the demo model into GGUF with llama.cpp's own converter, told the demo
tokenizer's pre-tokenizer (GPT-2's byte-level split), which it cannot recognise by itself.

    python -m server.llamacpp build
    python -m server.llamacpp serve --port 8200 --parallel 4
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from server.cache import cache_root, locked
from server.launch import LaunchError, ServerGroup, wait_healthy
from server.real_model import F32_GGUF_NAME, PRE_TOKENIZER, RealModel, prepare

SOURCE_PACKAGE = "llama-cpp-python"
SOURCE_VERSION = "0.3.36"
# Only what the server needs: no tests, examples, TLS, or web UI (the prebuilt one is fetched
# from a model hub at configure time, which these machines cannot reach).
CMAKE_OPTIONS = ("-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=OFF",
                 "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                 "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_BUILD_UI=OFF",
                 "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF")
# The demo tokenizer splits as GPT-2 does (tokenizers' ByteLevel with its regex).
DEMO_PRE_TOKENIZER = "gpt-2"
START_TIMEOUT_S = 120.0
_PERCENT = re.compile(rb"^\[\s*(\d+)%\]")

Say = Callable[[str], None]


def _say(message: str) -> None:
    print(f"[llama.cpp] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Where the build lives, in the per-machine cache."""
    return cache_root() / f"llama.cpp-{SOURCE_VERSION}"


def _fetch_source(dest: Path, say: Say) -> None:
    """The sdist's vendor/llama.cpp, extracted into dest."""
    say(f"downloading the {SOURCE_PACKAGE} {SOURCE_VERSION} sdist for llama.cpp's source")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", "-d", tmp, f"{SOURCE_PACKAGE}=={SOURCE_VERSION}"],
            capture_output=True, text=True)
        if done.returncode != 0:
            raise LaunchError(f"pip could not download {SOURCE_PACKAGE}=={SOURCE_VERSION}: "
                              f"{done.stderr.strip().splitlines()[-1:]}")
        [sdist] = Path(tmp).glob("*.tar.gz")
        prefix = f"{sdist.name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        with tarfile.open(sdist) as archive:
            members = []
            for member in archive.getmembers():
                if member.name.startswith(prefix):
                    member.name = member.name[len(prefix):]
                    members.append(member)
            archive.extractall(staging, members=members, filter="data")
        staging.rename(dest)


def _compile(source: Path, build: Path, log_path: Path, say: Say) -> Path:
    """cmake configure and build of the llama-server target; progress every tenth."""
    jobs = str(os.cpu_count() or 2)
    with log_path.open("wb") as log:
        steps = (["cmake", "-S", str(source), "-B", str(build), *CMAKE_OPTIONS],
                 ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs])
        for step in steps:
            process = subprocess.Popen(step, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            said = -1
            for line in process.stdout:
                log.write(line)
                percent = _PERCENT.match(line)
                if percent and int(percent[1]) // 10 > said:
                    said = int(percent[1]) // 10
                    say(f"building llama-server: {percent[1].decode()}%")
            if process.wait() != 0:
                raise LaunchError(f"building llama-server failed ({' '.join(step[:2])} exited "
                                  f"{process.returncode}); see {log_path}")
    return build / "bin" / "llama-server"


def build_server(say: Say = _say) -> Path:
    """The llama-server binary, built unless the cache already holds it."""
    root = cache_dir()
    binary = root / "bin" / "llama-server"
    marker = root / "built.json"
    with locked(root):
        if marker.exists() and binary.exists():
            return binary
        started = time.monotonic()
        source = root / "src"
        if not (source / "CMakeLists.txt").exists():
            _fetch_source(source, say)
        say(f"building llama-server with {os.cpu_count()} jobs, once per machine (about 12 "
            f"minutes on 2 cores); log: {root / 'build.log'}")
        build = root / "build"
        built = _compile(source, build, root / "build.log", say)
        binary.parent.mkdir(exist_ok=True)
        shutil.copy2(built, binary)
        shutil.rmtree(build)  # its objects are 100s of MB; the binary is static
        seconds = round(time.monotonic() - started, 1)
        marker.write_text(json.dumps({"package": SOURCE_PACKAGE, "version": SOURCE_VERSION,
                                      "build_seconds": seconds}))
        say(f"llama-server built in {seconds:.0f} s: {binary}")
        return binary


# The converter as a program, told the pre-tokenizer: it hashes a tokenization of a test text
# and knows only the published tokenizers' hashes.
_CONVERT = """
import sys
source, pre_tokenizer, *argv = sys.argv[1:]
sys.path[:0] = [source, source + "/gguf-py"]
sys.argv = ["convert_hf_to_gguf.py", *argv]
import convert_hf_to_gguf
from conversion.base import TextModel
TextModel.get_vocab_base_pre = lambda self, tokenizer: pre_tokenizer
convert_hf_to_gguf.main()
"""


def convert(model_dir: Path, out_path: Path, pre_tokenizer: str = DEMO_PRE_TOKENIZER) -> Path:
    """A Hugging Face model folder as one GGUF file (f32, as the demo model's weights are),
    unless out_path is already there. Needs the build's source (build_server() first)."""
    if out_path.exists():
        return out_path
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT, str(cache_dir() / "src"), pre_tokenizer,
         str(model_dir), "--outfile", str(partial), "--outtype", "f32"],
        capture_output=True, text=True)
    if done.returncode != 0:
        raise LaunchError(f"converting {model_dir} to GGUF failed: "
                          f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    partial.rename(out_path)
    return out_path


def server_command(binary: Path, model: Path, port: int, parallel: int, context: int,
                   threads: int) -> list[str]:
    """llama-server on loopback with its Prometheus metrics; `context` is the total, shared by
    the `parallel` slots."""
    return [str(binary), "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
            "--parallel", str(parallel), "--ctx-size", str(context), "--threads", str(threads),
            "--metrics", "--no-webui", "--log-disable"]


def start_server(binary: Path, model: Path, port: int, *, parallel: int = 4,
                 context: int = 32768, threads: int = 2, log_dir: Path,
                 timeout_s: float = START_TIMEOUT_S) -> ServerGroup:
    """Start llama-server and return once its /health answers (it says 503 while loading)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"llama-server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(server_command(binary, model, port, parallel, context, threads),
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    group = ServerGroup([process], [f"http://127.0.0.1:{port}"], [log_path], "llama-server")
    try:
        wait_healthy(group, timeout_s)
    except BaseException:
        group.stop()
        raise
    return group


def dequantized_gguf(model: RealModel) -> Path:
    """The real model's dequantized float32 weights (what vLLM serves and the reference runs)
    as a GGUF file, by llama.cpp's own converter: the same numbers on both servers, where the
    Q4_1 file runs llama.cpp's quantized kernels (activations rounded to 8 bits). Needs the
    build's source (build_server() first)."""
    with locked(model.hf_dir.parent):
        return convert(model.hf_dir, model.hf_dir.parent / F32_GGUF_NAME, PRE_TOKENIZER)


def _model_file(name: str, work_dir: Path) -> Path:
    if name == "demo":
        from server.demo_model import build as build_demo_model

        return convert(build_demo_model(work_dir / "demo-model"), work_dir / "demo-model.gguf")
    real = prepare()
    return real.gguf if name == "real" else dequantized_gguf(real)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build llama-server (once) and print its path")
    serve = commands.add_parser("serve", help="serve the demo model until interrupted")
    serve.add_argument("--port", type=int, default=8200)
    serve.add_argument("--parallel", type=int, default=4, help="slots (requests at once)")
    serve.add_argument("--ctx-size", type=int, default=32768, help="context of all slots")
    serve.add_argument("--work-dir", type=Path, default=Path("work"))
    serve.add_argument("--model", choices=("demo", "real", "real-f32"), default="demo",
                       help="demo: the random-weight demo model; real: SmolLM2-135M-Instruct's "
                            "Q4_1 GGUF as shipped; real-f32: its dequantized weights "
                            "(server/real_model.py)")
    args = parser.parse_args(argv)
    try:
        binary = build_server()
        if args.command == "build":
            print(binary)
            return 0
        model = _model_file(args.model, args.work_dir)
        group = start_server(binary, model, args.port, parallel=args.parallel,
                             context=args.ctx_size, log_dir=args.work_dir / "logs")
    except LaunchError as exc:
        print(f"server.llamacpp: {exc}", file=sys.stderr)
        return 1
    print(f"ENDPOINT {group.endpoints[0]}", flush=True)
    try:
        group.processes[0].wait()
    except KeyboardInterrupt:
        pass
    finally:
        group.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
