# Two commands on a fresh machine: `make run` (the dashboard) and `make test` (the suite).
.PHONY: run serve test lint venv bench check

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
	.venv/bin/python -m pytest -n 3 --dist worksteal

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

check: venv
	.venv/bin/python manage.py check
	.venv/bin/python manage.py makemigrations --check --dry-run

bench: venv
	.venv/bin/python bench/confirmations.py
	.venv/bin/python bench/broadcast.py
	.venv/bin/python bench/balances.py
