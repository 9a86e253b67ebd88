"""`make run`: a living dashboard on this machine.

Starts a regtest node (data kept in var/node), migrates, makes an `admin` superuser with
a fresh printed password, binds a BTC wallet to the node, then runs the django-q2
scheduler and the web server on 127.0.0.1 until Ctrl-C, which stops all three.
"""
import os
import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, call_command

from cryptoadmin.localservices import LocalBitcoind


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the dashboard with a local regtest node and the scheduler (Ctrl-C stops everything)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--no-serve", action="store_true", help="Set up and exit (for tests).")

    def handle(self, *args, port, no_serve, **options):
        # Explicit handlers: a shell that starts us in the background ignores SIGINT for us.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _interrupt)
        node = LocalBitcoind(datadir=str(settings.BASE_DIR / "var" / "node")).start()
        children = []
        try:
            call_command("migrate", interactive=False, verbosity=0)
            wallet = self.setup_books(node)
            password = self.setup_admin()
            self.after_setup(node, wallet)
            if no_serve:
                self.stdout.write(f"admin password: {password}")
                return
            env = dict(os.environ)
            manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
            children.append(subprocess.Popen(manage + ["qcluster"], env=env))
            children.append(subprocess.Popen(manage + ["runserver", f"127.0.0.1:{port}", "--noreload"], env=env))
            self.stdout.write(self.style.SUCCESS(
                f"\n  Dashboard: http://127.0.0.1:{port}/admin/\n  Log in as: admin / {password}\n"
                f"  Node: regtest bitcoind pid {node.pid}, RPC on 127.0.0.1:{node.rpc_port}\n"
                "  Ctrl-C stops the server, the scheduler and the node.\n"))
            self.run_until_interrupted(node, wallet, children)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGINT)
            for child in children:
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
            node.stop(remove=False)
            self.stdout.write("stopped: web server, scheduler, node")

    def setup_books(self, node):
        from ledger.models import Currency, Wallet

        if node.rpc("getblockcount") < 101:
            node.generate(101)
        btc, _ = Currency.objects.get_or_create(
            code="BTC", defaults={"name": "Bitcoin (regtest)", "crediting_threshold": 2, "polling_threshold": 6})
        wallet, _ = Wallet.objects.update_or_create(
            name="BTC regtest", defaults={"currency": btc, "backend": "bitcoind", "backend_settings": {"url": node.url}})
        return wallet

    def setup_admin(self):
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return password

    def after_setup(self, node, wallet):
        """Hook for demo data (users, addresses, funded books)."""

    def run_until_interrupted(self, node, wallet, children):
        try:
            while all(child.poll() is None for child in children):
                self.tick(node, wallet)
                time.sleep(5)
        except KeyboardInterrupt:
            pass

    def tick(self, node, wallet):
        """Hook for demo traffic; by default a block every tick so confirmations move."""
        node.generate(1)
