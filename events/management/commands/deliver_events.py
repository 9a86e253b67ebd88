import signal

from cryptoadmin.commands import MoneyCommand
from cryptoadmin.words import count
from events.dispatcher import Dispatcher


class Command(MoneyCommand):
    help = (
        "Deliver webhook events until stopped (SIGTERM or Ctrl-C finish the attempts under way); "
        "--once delivers what is due and exits."
    )

    def add_arguments(self, parser):
        parser.add_argument("--workers", type=int, default=None, help="endpoints served at once")
        parser.add_argument("--batch", type=int, default=100, help="deliveries claimed at once")
        parser.add_argument("--poll", type=float, default=None, help="seconds between checks")
        parser.add_argument("--once", action="store_true", help="exit when nothing is due")

    def handle(self, *args, workers=None, batch=100, poll=None, once=False, **options):
        dispatcher = Dispatcher(workers=workers, batch=batch, poll=poll)

        def stop(signum, frame):
            dispatcher.stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
        self.stdout.write("delivering events", ending="\n")
        self.stdout.flush()
        sent = dispatcher.run(until_idle=once)
        self.stdout.write(f"stopped: {count(sent, 'attempt')} made")
