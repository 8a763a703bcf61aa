# `make demo` and `make test` set everything up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a bare `torch` would pull a multi-GB CUDA build. Our machines keep
	# the CPU wheel on disk (PIP_FIND_LINKS); elsewhere PyPI's 2.13.0 is a CUDA build, so pass
	# TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" for the CPU one.
	$(PY) -m pip install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bell-edge demo

test: $(STAMP)
	$(VENV)/bin/ruff check bell_edge tests benchmarks
	$(PY) -m pytest -q -m "not gpu" -n auto

lint: $(STAMP)
	$(VENV)/bin/ruff check bell_edge tests benchmarks
	$(VENV)/bin/ruff format --check bell_edge tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info
