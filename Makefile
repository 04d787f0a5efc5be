# Two entry points (see README): `make demo` sets up and runs the main job; `make test` sets up and runs
# the tests. Both create .venv on first use; torch is installed first from its CPU build.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export MALLOC_MMAP_THRESHOLD_ := 17179869184
export MALLOC_TRIM_THRESHOLD_ := 17179869184
export MALLOC_TOP_PAD_ := 1073741824
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint fashion-mnist

$(BIN)/vlarm: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of torch: from PyTorch's CPU index where it can be reached, else the default index (on the
	# development machines that resolves to a CPU wheel on local disk).
	$(BIN)/pip install --quiet --timeout 10 --retries 0 --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
		|| $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/vlarm

setup: $(BIN)/vlarm

demo: setup
	$(BIN)/vlarm run "put the red blocks in a green bowl" --seed 0 --video outputs/demo.mp4

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks

# Real images for the VLM few-shot benchmarks (Debian package; needs root). Not needed by the tests.
fashion-mnist:
	test -d /usr/share/datasets/fashion-mnist || apt-get install -y dataset-fashion-mnist
