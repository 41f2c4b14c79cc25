# make demo  - install into .venv, then run the main job on generated data
# make test  - install into .venv, then run the test suite
# make lint  - ruff
# make bench - cost benchmark: iteration time and peak memory of IPS vs. the alternatives
# make bench-accuracy - efficacy benchmark: baseline vs. IPS on handwritten-digit scenes, 3 seeds (CPU),
#   both continuing the same trained baseline (--start warm); BENCH_ARGS='--start scratch' for random weights
#
# TORCH picks the PyTorch build: the default is the CPU wheel; on a GPU server use e.g.
#   make test TORCH='torch==2.4.1 --extra-index-url https://download.pytorch.org/whl/cu121'
# (a torch built for NumPy 2, 2.3 or later: opencv-python pulls numpy 2).
# mmcv 2.1.0 has no binary wheel: the first install builds it from source with its ops
# (about 16 minutes on 2 cores); pip caches the wheel and later installs take seconds.
# TORCH is read when .venv is made: to switch, `pip cache remove mmcv` and `rm -rf .venv` first.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.ipswap_mm-installed

.PHONY: install demo test lint bench bench-accuracy clean

install: $(STAMP)

$(STAMP): setup.py requirements/build.txt requirements/mmcv.txt requirements/runtime.txt requirements/tests.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q $(TORCH) -r requirements/build.txt
	MMCV_WITH_OPS=1 $(PIP) install -q --no-build-isolation -r requirements/mmcv.txt
	$(PIP) install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import mmcv.ops, mmseg, mmdet, ipswap_mm; print('ipswap_mm', ipswap_mm.__version__, 'installed in $(VENV)')"
	touch $@

demo: install
	$(PY) tools/demo.py

test: install
	$(PY) -m pytest tests

bench: install
	$(PY) tools/benchmark_cost.py $(BENCH_ARGS)

bench-accuracy: install
	$(PY) tools/benchmark_accuracy.py --start warm $(BENCH_ARGS)

lint: install
	$(PY) -m ruff check ipswap_mm tools tests configs docs

clean:
	rm -rf $(VENV) work_dirs build *.egg-info
