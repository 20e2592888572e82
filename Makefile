# `make app` sets everything up and starts the app; `make test` runs the tests.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

$(STAMP): requirements.txt pyproject.toml
	@echo "Setting up $(VENV) and installing dlx's requirements (a few minutes the first time)..."
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $(STAMP)

.PHONY: app test lint bench
app: $(STAMP)
	$(VENV)/bin/dlx ui

# pytest exits 5 when it collects nothing: not a failure of the code under test.
test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0 || exit $$rc

# ruff (pyflakes, isort, bugbear, pyupgrade) and mypy, both configured in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	for f in bench/bench_*.py; do $(VENV)/bin/python $$f || exit 1; done
