# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | sha1sum | cut -c1-10)
export KERAS_BACKEND ?= tensorflow
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1
# make test: pytest-xdist workers, one test file per worker at a time (module fixtures train once).
TEST_WORKERS ?= 2

.PHONY: install demo test test-slow lint bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[demo,dev]'
	rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

demo: install
	$(BIN)/python -m tasks.demo

test: install
	$(BIN)/python -m pytest -q --timeout=900 -n $(TEST_WORKERS) --dist loadfile

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check models pipelines tasks tests bench

clean:
	rm -rf runs tune build *.egg-info
