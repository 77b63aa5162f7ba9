# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv/ at the
# repo root when missing and install the project into it, pinned by requirements.lock.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint lock audit

$(STAMP): pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/llmbilling serve --demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -n 2

# Re-pin every dependency from pyproject.toml into requirements.lock (in a scratch venv).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ echo "# Every dependency, direct and transitive, pinned: the constraints 'make' installs with."; \
	  echo "# Regenerate with 'make lock' after changing pyproject.toml."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable; } > requirements.lock
	rm -rf .lock-venv

# Known vulnerabilities in the pinned set; --strict fails on anything it could not audit.
audit: $(STAMP)
	$(VENV)/bin/pip-audit --strict --progress-spinner off -r requirements.lock
