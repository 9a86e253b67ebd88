"""`make serve`: the production processes on this machine, from the environment.

gunicorn serves the WSGI app (static files by whitenoise, after collectstatic), a django-q2
cluster runs the schedules, `deliver_events` sends webhooks, and `listen_node` (when an enabled
bitcoind wallet exists) follows the nodes' ZMQ feeds and deploy/walletnotify's socket. No demo
data, no migration: run `manage.py migrate` first (and again on every upgrade, before
restarting). Under systemd, run the processes as separate units instead (deploy/); this command
is for one machine or a first try of production settings.
SIGINT or SIGTERM stops them all; if one exits, the others are stopped and this exits 1.
"""

import signal
import sys
import time

from django.conf import settings
from django.core.management import BaseCommand, CommandError, call_command
from django.db import connection

from ops.processes import ProcessTree, ignore_stop_signals


class _Stop(Exception):
    pass


def _stop(signum, frame):
    raise _Stop


def _bitcoind_wallets() -> bool:
    from ledger.models import Wallet

    return Wallet.objects.filter(enabled=True, backend=Wallet.Backend.BITCOIND).exists()


class Command(BaseCommand):
    help = "Run gunicorn and the django-q2 cluster (production settings from the environment)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind", default=None, help="gunicorn address (default 127.0.0.1:$PORT)"
        )
        parser.add_argument(
            "--web-workers", type=int, default=None, help="gunicorn workers (default $WEB_WORKERS)"
        )
        parser.add_argument("--no-scheduler", action="store_true", help="web server only")
        parser.add_argument(
            "--no-listener",
            action="store_true",
            help="no `listen_node` (it runs when an enabled bitcoind wallet exists)",
        )

    def handle(
        self, *args, bind=None, web_workers=None, no_scheduler=False, no_listener=False, **options
    ):
        self._prepare()
        bind = bind or f"127.0.0.1:{settings.PORT}"
        workers = web_workers or settings.WEB_WORKERS
        tree = ProcessTree()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _stop)
        code, names = 0, []
        try:
            names = _start_all(tree, bind, workers, no_scheduler, no_listener)
            self.stdout.write(
                f"serving on http://{bind}/admin/ with {workers} web worker(s)"
                + "".join(f", {name}" for name in names[1:]),
                ending="\n",
            )
            self.stdout.flush()
            while tree.all_running():
                time.sleep(0.5)
            self.stderr.write("a process exited: stopping the others")
            code = 1
        except _Stop:
            pass
        finally:
            ignore_stop_signals()
            tree.stop(timeout=30)
            self.stdout.write("stopped: " + ", ".join(names or ["web server"]))
        if code:
            sys.exit(code)

    def _prepare(self):
        if connection.vendor != "postgresql":
            raise CommandError(
                "serve runs on PostgreSQL: set DATABASE_URL=postgres://user:pass@host:port/name "
                "(SQLite is for `make run`)."
            )
        if settings.DEBUG:
            self.stderr.write("warning: DEBUG is on; production runs with DEBUG off.")
        call_command("check", deploy=True, fail_level="ERROR")
        call_command("collectstatic", interactive=False, verbosity=0)


def _start_all(tree, bind, workers, no_scheduler, no_listener) -> list[str]:
    """Start the processes; returns their names, the web server first."""
    python = sys.executable
    manage = [python, str(settings.BASE_DIR / "manage.py")]
    tree.start(
        [python, "-m", "gunicorn", "cryptoadmin.wsgi:application", "--bind", bind]
        + ["--workers", str(workers), "--access-logfile", "-", "--graceful-timeout", "20"]
    )
    names = ["web server"]
    if not no_scheduler:
        tree.start(manage + ["qcluster"])
        tree.start(manage + ["deliver_events"])
        names += ["scheduler", "event dispatcher"]
    if not no_listener and _bitcoind_wallets():
        # Push: ZMQ feeds and deploy/walletnotify's socket; the scheduler's poll stays the
        # safety net.
        tree.start(manage + ["listen_node"])
        names.append("node listener")
    return names
