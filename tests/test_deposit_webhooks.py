"""A deposit from the outside node, end to end: the poller's events reach a receiver process
through `deliver_events`, each verified with `standardwebhooks`: deposit.seen, every
confirmation up to the closing threshold, deposit.credited, none missing, in sequence."""

import signal
import subprocess

import pytest

from devtools.localservices import free_port
from events.models import WebhookEndpoint
from ledger import services
from ledger.confirmations.entry_points import update_confirmations
from tests.support import (
    PYTHON,
    REPO,
    make_currency,
    make_wallet,
    manage_process,
    pay_from_outside,
    wait_until,
)
from tests.test_confirmations import mine

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_delivers_a_deposits_events_in_order_verified(two_nodes, child_env, tmp_path):
    import json

    ours, outside = two_nodes
    wallet = make_wallet(make_currency("BTC", crediting_threshold=2, polling_threshold=4), ours)
    port = free_port()
    endpoint = WebhookEndpoint.objects.create(
        url=f"http://127.0.0.1:{port}/hook",
        event_types=["deposit.seen", "deposit.confirmations", "deposit.credited"],
    )
    got = tmp_path / "got.jsonl"
    receiver = subprocess.Popen(
        [PYTHON, "tests/webhook_receiver.py", str(port), endpoint.secret, str(got)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    dispatcher = manage_process(child_env, "deliver_events")
    try:
        assert receiver.stdout.readline().strip() == "listening"
        address = services.new_receiving_address(wallet, "alice")
        pay_from_outside(ours, outside, address.address, "0.5")
        update_confirmations(wallet.currency)
        for _ in range(4):
            mine(ours, outside)
            update_confirmations(wallet.currency)

        def arrived():
            lines = got.read_text().splitlines() if got.exists() else []
            return [json.loads(line)["body"] for line in lines]

        wait_until(lambda: len(arrived()) >= 6, 30, what="six deposit events")
        bodies = sorted(arrived(), key=lambda b: b["sequence"])
        steps = [(b["type"], b["data"]["confirmations"], b["data"]["credited"]) for b in bodies]
        assert steps == [
            ("deposit.seen", 0, False),
            ("deposit.confirmations", 1, False),
            ("deposit.confirmations", 2, False),
            ("deposit.credited", 2, True),
            ("deposit.confirmations", 3, True),
            ("deposit.confirmations", 4, True),
        ]
        assert [b["sequence"] for b in bodies] == [1, 2, 3, 4, 5, 6]
        assert {b["data"]["amount"] for b in bodies} == {"0.50000000"}
    finally:
        for proc in (dispatcher, receiver):
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
