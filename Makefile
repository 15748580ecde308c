# Set-up and entry points. `make demo` and `make test` are all a fresh clone needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch/torchvision are pinned here (not in pyproject) so pip takes the builds on this machine's disk.
ifeq ($(shell uname -m),aarch64)
TORCH  := torch==2.9.1 torchvision==0.24.1
else
TORCH  := torch==2.14.1 torchvision==0.29.1
endif
PIP    := $(BIN)/python -m pip -q --disable-pip-version-check

.PHONY: install test-deps demo test bench bench-peers clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(TORCH) 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import torch, torchvision" 
	$(PIP) install -e . 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import vision_synth, albumentations, pycocotools, diffusers, accelerate, numba"
	$(BIN)/python tools/warm_kernels.py
	@touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PIP) install -e ".[test,fid]" 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import torch_fidelity, torchmetrics, pytest, xdist"
	@touch $@

test-deps: $(VENV)/.test-installed

demo: install
	$(BIN)/vision-synth generate configs/quickstart.yaml --out out/quickstart --overwrite

# the suite in up to 4 worker processes (pytest-xdist; 2 on the 2-core CI machine: 2.7 min against 4.5)
test: test-deps
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| echo "chromium not installed: the report's browser test will be skipped"
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4

bench: install
	$(BIN)/python tools/bench_compositor.py

# the peer (defect-synthesis 0.1.0) in a virtual environment of its own, .vision_synth/peers/
bench-peers: install
	$(BIN)/python tools/bench_peers.py

clean:
	rm -rf out build *.egg-info
