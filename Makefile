# `make demo` and `make test` do all set-up: they create (or reuse) .venv from the pinned
# constraints, then run. Other targets: bench, samples, clean.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cnntool-installed
PYTEST_ARGS ?=

.PHONY: venv demo test bench samples clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash bench/run_all.sh

samples: $(STAMP)
	$(PY) scripts/make_samples.py

clean:
	rm -rf $(VENV) demo-out bench/out .pytest_cache
