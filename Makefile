# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv/ at the
# repo root when missing and install the project into it, pinned by requirements.lock.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint lock audit audit-offline

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

# Every pin of requirements.lock against the dated OSV snapshot beside the repository
# (../shared/advisories), offline: prints the snapshot's date, fails on any affected pin.
ADVISORIES ?= ../shared/advisories
audit-offline: $(STAMP)
	$(VENV)/bin/python tools/audit_offline.py --advisories $(ADVISORIES)

# The offline check, then pip-audit against OSV's service when it answers (--strict fails on
# anything it could not audit); where no service answers, the offline check is the audit.
audit: audit-offline
	@if $(VENV)/bin/python tools/vuln_service_answers.py; then \
	  $(VENV)/bin/pip-audit --strict --no-deps --progress-spinner off -s osv -r requirements.lock; \
	else \
	  echo "audit: pip-audit skipped: the OSV vulnerability service did not answer"; \
	fi
