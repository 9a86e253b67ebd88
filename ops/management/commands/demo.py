"""`make run`: a living dashboard on this machine.

Two regtest nodes peered on loopback: "outside" stands for the rest of the world (it mines
and pays deposits), "ours" holds the service's wallet (its ZMQ feed drives `listen_node`). Migrates,
makes an `admin` superuser with a fresh printed password, funds the wallet and imports
that balance into the books, gives a few users deposit addresses, then runs the django-q2
scheduler (the poll: the safety net), the node listener and the web server on 127.0.0.1
with a little traffic until Ctrl-C, which stops all of it. Data stays in var/ between runs.
"""

import os
import random
import secrets
import signal
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, call_command

from devtools.localservices import LocalBitcoind
from ops.processes import ProcessTree, ignore_stop_signals


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Run the dashboard with a local regtest node and the scheduler (Ctrl-C stops everything)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=None, help="default: $PORT, else 8000")
        parser.add_argument("--no-serve", action="store_true", help="Set up and exit (for tests).")
        parser.add_argument(
            "--var",
            default=None,
            help="Directory for the nodes' data (default: var/ in the repository).",
        )

    def handle(self, *args, port, no_serve, var=None, **options):
        port = self.port = port or settings.PORT
        # Explicit handlers: a shell that starts us in the background ignores SIGINT for us.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _interrupt)
        var = Path(var) if var else settings.BASE_DIR / "var"
        outside = LocalBitcoind(datadir=str(var / "outside")).start()
        try:
            # Push, as in production: the node's ZMQ feed and the listener (no walletnotify).
            node = LocalBitcoind(datadir=str(var / "node"), peer=outside, zmq=True).start()
        except Exception:
            outside.stop(remove=False)
            raise
        self.outside = outside
        # Children run in sessions of their own, so Ctrl-C reaches this process only and the
        # scheduler gets exactly one SIGTERM from us (ops/processes.py says why).
        children = ProcessTree()
        try:
            call_command("migrate", interactive=False, verbosity=0)
            wallet = self.setup_books(node)
            password = self.setup_admin()
            self.after_setup(node, wallet)
            if no_serve:
                self.stdout.write(f"admin password: {password}")
                self.stdout.write(f"second factor: {self.second_factor_note()}")
                return
            env = dict(os.environ)
            manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
            # This command ran the system checks at its start, on the same settings.
            children.start(manage + ["qcluster", "--skip-checks"], env=env)
            children.start(manage + ["deliver_events", "--skip-checks"], env=env)
            children.start(manage + ["listen_node", "--no-notify-socket", "--skip-checks"], env=env)
            children.start(
                manage + ["runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"], env=env
            )
            self.stdout.write(
                self.style.SUCCESS(
                    f"\n  Dashboard: http://127.0.0.1:{port}/admin/\n  Log in as: admin / "
                    f"{password}\n  Second factor: {self.second_factor_note()}\n  Node: regtest "
                    f"bitcoind pid {node.pid}, RPC on 127.0.0.1:{node.rpc_port}\n  Ctrl-C stops "
                    "the server, the scheduler, the event dispatcher and the node.\n"
                )
            )
            self.run_until_interrupted(node, wallet, children)
        except KeyboardInterrupt:
            pass
        finally:
            ignore_stop_signals()
            children.stop(timeout=20)
            # Both shut down at once; stop() then waits for each. SIGTERM, as stop() sends it:
            # a SIGINT is lost while a walletnotify command runs (localservices.py says why).
            for server in (node, outside):
                if server.proc and server.proc.poll() is None:
                    server.proc.send_signal(signal.SIGTERM)
            node.stop(remove=False)
            outside.stop(remove=False)
            self.stdout.write("stopped: web server, scheduler, event dispatcher, nodes")

    def setup_books(self, node):
        from ledger.models import Currency, Wallet

        if self.outside.rpc("getblockcount") < 101:
            self.outside.generate(101)
        btc, _ = Currency.objects.get_or_create(
            code="BTC",
            defaults={
                "name": "Bitcoin (regtest)",
                "crediting_threshold": 2,
                "polling_threshold": 6,
            },
        )
        wallet, _ = Wallet.objects.update_or_create(
            name="BTC regtest",
            defaults={
                "currency": btc,
                "backend": "bitcoind",
                "backend_settings": {"url": node.url, "zmq": node.zmq_url},
            },
        )
        return wallet

    def second_factor_note(self):
        if settings.OTP_REQUIRED:
            return "required (OTP_REQUIRED on): enrol an authenticator app right after the password"
        return (
            "OFF in this demo (OTP_REQUIRED=0, the default with DEBUG=1); "
            "production requires a TOTP code from every staff user"
        )

    def setup_admin(self):
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return password

    USERS = ("alice", "bob", "carol", "dave")

    def after_setup(self, node, wallet):
        """First run: fund our wallet from outside and import it; give users addresses."""
        from ledger import imports, services
        from ledger.models import Address

        height = self.outside.rpc("getblockcount")
        self._wait(lambda: node.rpc("getblockcount") >= height)
        treasury = services.user_account("treasury", wallet.currency)
        if node.rpc("getbalance", "*", 0) == 0:
            self.outside.rpc("sendtoaddress", node.rpc("getnewaddress"), "40")
            self.outside.generate(1)
            self._wait(lambda: node.rpc("getbalance", "*", 0) > 0)
        try:
            entry = imports.import_unaccounted_balance(wallet.pk, treasury.pk)
            self.stdout.write(
                f"imported {wallet.currency.amount(entry.amount)} into the books "
                f"(account {treasury.pk})"
            )
        except imports.WalletImportError as exc:
            self.stdout.write(str(exc))
        for user in self.USERS:
            if not Address.objects.filter(wallet=wallet, account__user_id=user).exists():
                services.new_receiving_address(wallet, user)

    @staticmethod
    def _wait(predicate, timeout=30):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError("the demo nodes did not sync")
            time.sleep(0.2)

    def run_until_interrupted(self, node, wallet, children):
        try:
            # Traffic starts after a first pause: the server, the scheduler and the listener
            # start first.
            while children.all_running():
                time.sleep(5)
                self.tick(node, wallet)
        except KeyboardInterrupt:
            pass

    def tick(self, node, wallet):
        """Some traffic: a block every tick so confirmations move, deposits from outside, and
        the product's requests through the API: moves between accounts every tick, now and
        then a withdrawal or a new deposit address."""
        from ledger.models import Address

        if random.random() < 0.5:
            address = random.choice(list(Address.objects.filter(wallet=wallet, kind="receiving")))
            amount = _random_amount()
            self.outside.rpc("sendtoaddress", address.address, amount)
        product = self.product()
        product.shuffle()
        if random.random() < 0.2:
            product.withdraw(self.outside.rpc("getnewaddress"))
        if random.random() < 0.1:
            product.new_address()
        self.outside.generate(1)

    def product(self):
        """The service's app, speaking to this demo's web server through /api/v1/."""
        if getattr(self, "_product", None) is None:
            from ops.demo_traffic import ProductTraffic

            self._product = ProductTraffic(f"http://127.0.0.1:{self.port}", self.USERS)
        return self._product


def _random_amount() -> str:
    """A deposit between 0.01 and 1.5 BTC, as an exact decimal string (never a float)."""
    units = random.randint(1_000_000, 150_000_000)
    return f"{units // 10**8}.{units % 10**8:08d}"
