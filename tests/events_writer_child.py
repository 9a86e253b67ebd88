"""A writer process for the feed's test: TXNS transactions, each emitting one to three events
and holding its transaction open a random few milliseconds before committing, so writers
commit out of id order. `python tests/events_writer_child.py NAME TXNS SEED`."""

import os
import random
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devtools.settings_test")
django.setup()

from django.db import transaction  # noqa: E402

from ledger import outbox  # noqa: E402


def main(name, txns, seed):
    rng = random.Random(seed)
    for n in range(txns):
        with transaction.atomic():
            for k in range(rng.randint(1, 3)):
                outbox.emit("transfer.posted", "transfer", f"{name}-{n}-{k}")
            time.sleep(rng.uniform(0, 0.02))
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
