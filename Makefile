# Two commands on a fresh machine: `make run` (the dashboard) and `make test` (the suite).
.PHONY: run serve test lint venv bench check screenshots bench-quick

venv:
	@scripts/bootstrap

run:
	@scripts/bootstrap run
	DEBUG=$${DEBUG:-1} .venv/bin/python manage.py demo

# Production processes with the service's environment file (CRYPTOADMIN_ENV, default
# /etc/cryptoadmin/env, as deploy/manage reads it) over the process environment; see
# docs/operations.md.
serve:
	@scripts/bootstrap run
	deploy/manage migrate --noinput
	deploy/manage serve

# Lint and format are checked first: a dirty tree fails the run before any test starts.
test:
	@scripts/bootstrap test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/python -m pytest -n 4 --dist worksteal

# The suite saves its browser pictures to a temporary folder; this refreshes the docs' on purpose.
screenshots:
	@scripts/bootstrap test
	SCREENSHOTS_DIR=docs/screenshots .venv/bin/python -m pytest -n 2 tests/test_browser_*.py

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

check: venv
	.venv/bin/python manage.py check
	.venv/bin/python manage.py makemigrations --check --dry-run

# Each benchmark starts its own PostgreSQL and nodes (bootstrap test installs the server).
bench:
	@scripts/bootstrap test
	.venv/bin/python bench/confirmations.py
	.venv/bin/python bench/broadcast.py
	.venv/bin/python bench/balances.py

# Every benchmark in its quick mode (small N, seconds each), as tests/test_benchmarks.py runs them.
bench-quick:
	@scripts/bootstrap test
	set -e; for bench in bench/*.py; do .venv/bin/python $$bench --quick; done
