# make demo  - install into .venv, then run the main job on generated data
# make test  - install into .venv, then run the test suite
# make lint  - ruff
# make bench - cost benchmark: iteration time and peak memory of IPS vs. the alternatives
# make bench-accuracy - efficacy benchmark: baseline vs. IPS on handwritten-digit scenes, 3 seeds (CPU),
#   both continuing the same trained baseline (--start warm); BENCH_ARGS='--start scratch' for random weights
#
# TORCH picks the PyTorch build. The default, torch==2.13.0, names no index: pip's configured
# indexes decide (on this project's CI machine, local wheels: the CPU build; on plain PyPI for
# Linux x86_64, the CUDA build). For the CPU build elsewhere, or a GPU server, use e.g.
#   make test TORCH='torch==2.13.0+cpu --extra-index-url https://download.pytorch.org/whl/cpu'
#   make test TORCH='torch==2.4.1 --extra-index-url https://download.pytorch.org/whl/cu121'
# (a torch built for NumPy 2, 2.3 or later: opencv-python pulls numpy 2).
# mmcv 2.1.0 has no binary wheel: the first install builds it from source with its ops
# (about 16 to 40 minutes on 2 cores); pip caches the wheel and later installs take seconds.
# .venv records the TORCH it was made with: a different TORCH reinstalls torch into it, and
# mmcv is rebuilt when the wheel pip cached was built for another torch (its ops fail to load,
# or have no CUDA kernels while torch sees a GPU).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.ipswap_mm-installed
TORCH_SPEC := $(VENV)/.ipswap_mm-torch
TORCH_INSTALLED := $(VENV)/.ipswap_mm-torch-installed

.PHONY: install demo test lint bench bench-accuracy clean FORCE

# mmcv's compiled ops load with this torch, and have CUDA kernels where torch has a GPU
export MMCV_OPS_MATCH_TORCH := import torch, mmcv.ops; \
  assert not torch.cuda.is_available() or mmcv.ops.get_compiling_cuda_version() != 'not available'

install: $(STAMP)

# Rewritten only when TORCH differs from the one .venv was made with, so that the install reruns then.
$(TORCH_SPEC): FORCE
	@mkdir -p $(VENV)
	@test "$$(cat $@ 2>/dev/null)" = '$(TORCH)' || echo '$(TORCH)' > $@

# TORCH_INSTALLED holds the TORCH installed, written as soon as it is (an install that fails later
# still leaves the record true; a .venv made before it has only the stamp, which held it, or,
# older still, nothing). Another TORCH is installed over it with --force-reinstall: pip keeps an
# installed torch that has the version asked for, whatever its build (+cpu, +cu121). The stamp
# says the whole install succeeded.
$(STAMP): Makefile setup.py ipswap_mm/version.py requirements/build.txt requirements/mmcv.txt \
          requirements/runtime.txt requirements/tests.txt $(TORCH_SPEC)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	test ! -f $(TORCH_INSTALLED) -a ! -f $@ || \
	  test "$$(cat $(TORCH_INSTALLED) 2>/dev/null || cat $@)" = '$(TORCH)' || \
	  $(PIP) install -q --force-reinstall --no-deps $(TORCH)
	$(PIP) install -q $(TORCH) -r requirements/build.txt
	echo '$(TORCH)' > $(TORCH_INSTALLED)
	MMCV_WITH_OPS=1 $(PIP) install -q --no-build-isolation -r requirements/mmcv.txt
	$(PY) -c "$$MMCV_OPS_MATCH_TORCH" || { \
	  echo "mmcv's ops do not fit this torch (above; a wheel pip cached for another build): rebuilding mmcv, about 16 to 40 minutes"; \
	  $(PIP) cache remove mmcv || true; \
	  MMCV_WITH_OPS=1 $(PIP) install -q --no-build-isolation --force-reinstall --no-deps -r requirements/mmcv.txt; \
	  $(PY) -c "$$MMCV_OPS_MATCH_TORCH"; }
	$(PIP) install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import mmcv.ops, mmseg, mmdet, ipswap_mm; print('ipswap_mm', ipswap_mm.__version__, 'installed in $(VENV)')"
	echo '$(TORCH)' > $@

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
