"""The base of the commands that move or check money."""

from django.core.checks import Tags
from django.core.management import BaseCommand


class MoneyCommand(BaseCommand):
    """A command the node, cron, the scheduler or an operator runs on the books: walletnotify
    once per wallet transaction, the poller and the broadcaster every minute.

    It runs this project's configuration checks (ops/checks.py, ops/deploy_checks.py: a lease
    margin under a second would let a send outlive its lease) and not Django's URL and admin
    checks. Those import the whole web side, GraphQL included, at about 0.75 s of CPU for every
    start; `manage.py check`, `migrate` and the web server still run them."""

    requires_system_checks = [Tags.security, Tags.compatibility]
