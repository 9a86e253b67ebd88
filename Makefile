# Two commands on a fresh machine: `make run` (the dashboard) and `make test` (the suite).
.PHONY: run test venv bench check

venv:
	@scripts/bootstrap

run:
	@scripts/bootstrap run
	DEBUG=$${DEBUG:-1} .venv/bin/python manage.py demo

test:
	@scripts/bootstrap test
	.venv/bin/python -m pytest

check: venv
	.venv/bin/python manage.py check
	.venv/bin/python manage.py makemigrations --check --dry-run

bench: venv
	.venv/bin/python bench/confirmations.py
	.venv/bin/python bench/broadcast.py
	.venv/bin/python bench/balances.py
