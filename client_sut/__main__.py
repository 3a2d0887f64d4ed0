"""`python -m client_sut` and the `client-sut` command: the process's entry."""

import sys


def main() -> int:
    # The client tokenizes and never runs a model. Where the environment has PyTorch (vLLM's
    # CPU wheel brings it), transformers' tokenizer import loads it, with its distributed and
    # compiler packages: 3 of the 4.5 s every run, probe and sweep point spent starting. Hidden,
    # transformers takes the path it takes in the client image, which has no PyTorch.
    # `reference` runs the model itself, and keeps it.
    if sys.argv[1:2] != ["reference"]:
        sys.modules.setdefault("torch", None)
    from client_sut.cli import main as run_command

    return run_command()


if __name__ == "__main__":
    sys.exit(main())
