# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install skcgcnn, run examples/quickstart.py (CGCNN vs a baseline)
#   make test   - create .venv, install skcgcnn with its test extras, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch first, pinned to a CPU build that satisfies the package's range (a bare "torch" would
# pull a multi-GB CUDA build); override with `make TORCH_SPEC="torch==X" ...`.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test lint docs bench clean

$(VENV)/.installed-%: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-test
	$(PY) examples/quickstart.py --out demo_output

test: $(VENV)/.installed-test
	$(PY) -m pytest -n 2 --dist loadfile

docs: $(VENV)/.installed-test
	$(PIP) install --quiet -r docs/requirements.txt
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

# Speed/memory benchmarks against the original method, cgcnn2 and PyTorch Geometric (needs
# ../shared): cgcnn2 and torch_geometric are installed in a separate environment, never as
# dependencies of skcgcnn.
BENCH_VENV ?= .bench-venv
bench:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet "$(TORCH_SPEC)"
	$(BENCH_VENV)/bin/pip install --quiet -e . cgcnn2 torch_geometric psutil
	$(BENCH_VENV)/bin/python benchmarks/featurize.py
	nice -n 10 $(BENCH_VENV)/bin/python benchmarks/train.py
	$(BENCH_VENV)/bin/python benchmarks/memory.py
	$(BENCH_VENV)/bin/python benchmarks/latency.py

lint: $(VENV)/.installed-test
	$(PY) -m ruff check skcgcnn tests examples benchmarks

clean:
	rm -rf $(VENV) $(BENCH_VENV) build dist *.egg-info demo_output docs/_build docs/generated docs/auto_examples
