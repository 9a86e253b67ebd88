"""`manage.py listen_node [--wallet W ...] [--zmq URL] [--resync SECONDS] [--notify-socket PATH]`:
follow bitcoind's ZMQ feed (ledger/listener.py) and take the txids deploy/walletnotify hands
over on a unix socket (nodes without ZMQ). Runs until SIGTERM or SIGINT; the process manager
keeps it alive."""

import signal

from django.conf import settings
from django.core.management import CommandError

from cryptoadmin.commands import MoneyCommand
from ledger.listener import Listener
from ledger.models import Wallet


class Command(MoneyCommand):
    help = (
        "Follow the nodes' ZMQ feeds: a new block polls at once, a wallet transaction is recorded "
        "at once."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--wallet",
            action="append",
            help="wallet name (default: every enabled bitcoind wallet "
            "with a 'zmq' endpoint in its backend settings)",
        )
        parser.add_argument(
            "--zmq",
            help="the node's ZMQ endpoint, e.g. tcp://127.0.0.1:28332 (overrides the wallets')",
        )
        parser.add_argument(
            "--resync", type=float, default=60.0, help="seconds between safety-net poll cycles"
        )
        parser.add_argument(
            "--notify-socket",
            default=None,
            help="unix socket for deploy/walletnotify (default: settings.WALLETNOTIFY_SOCKET)",
        )
        parser.add_argument(
            "--no-notify-socket",
            action="store_true",
            help="ZMQ only: wallets without a 'zmq' endpoint are not listened for",
        )

    def handle(self, wallet=None, zmq=None, resync=60.0, **options):
        socket_path = None
        if not options["no_notify_socket"]:
            socket_path = options["notify_socket"] or settings.WALLETNOTIFY_SOCKET
        wallets = self._wallets(wallet, zmq, socket_path)
        stop = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.append(True))
        verbose = options["verbosity"] >= 2
        listener = Listener(
            wallets,
            endpoint=zmq,
            resync=resync,
            out=(lambda line: self.stdout.write(line) or self.stdout.flush()) if verbose else None,
            notify_socket=socket_path,
        )
        feeds = [url for url in listener.groups if url] + ([socket_path] if socket_path else [])
        self.stdout.write(
            f"listening for {', '.join(w.name for w in wallets)} on {', '.join(feeds)}"
        )
        self.stdout.flush()
        try:
            listener.run(should_stop=lambda: bool(stop))
        finally:
            listener.close()
        self.stdout.write(f"stopped after {listener.handled} notification(s)")

    def _wallets(self, names, zmq, socket_path) -> list[Wallet]:
        wallets = Wallet.objects.filter(
            enabled=True, backend=Wallet.Backend.BITCOIND
        ).select_related("currency")
        if names:
            wallets = wallets.filter(name__in=names)
            missing = set(names) - {w.name for w in wallets}
            if missing:
                raise CommandError(
                    f"Unknown or disabled bitcoind wallet(s): {', '.join(sorted(missing))}"
                )
        wallets = [
            w for w in wallets if zmq or socket_path or (w.backend_settings or {}).get("zmq")
        ]
        if not wallets:
            raise CommandError(
                "No wallet to listen for: give --zmq, or set 'zmq' in a wallet's backend settings."
            )
        return wallets
