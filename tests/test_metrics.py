"""/metrics: Prometheus text format, names, labels and values checked against the database."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from broadcasts.models import Broadcast, OutgoingTransaction
from broadcasts.withdrawals import send_external
from ledger.models import NetworkTransaction as NT
from ledger.models import Wallet
from tests.support import credit_user, make_currency

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-0123456789abcdef"


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def network_tx(wallet, n, **fields):
    return NT.objects.create(currency=wallet.currency, wallet=wallet, txid=f"{n:064x}", **fields)


@pytest.fixture
def money(wallet, node):
    """Rows in every shape the metrics count, on the shared node's wallet."""
    now = timezone.now()
    network_tx(wallet, 1, type="deposit")
    network_tx(wallet, 2, type="deposit", opened_at=now - timedelta(hours=2))  # stuck
    network_tx(
        wallet, 3, type="deposit", state="conflicted", flagged=True, flag_reason="conflicted"
    )
    network_tx(wallet, 4, type="broadcast", state="closed")
    network_tx(
        wallet,
        5,
        type="deposit",
        state="closed_by_hand",
        flagged=True,
        flag_reason="settled by a person",
    )
    alice = credit_user(wallet, "alice", 50_000_000)
    send_external(alice, node.rpc("getnewaddress"), 1_000_000)
    send_external(alice, node.rpc("getnewaddress"), 2_500_000)
    Broadcast.objects.create(
        wallet=wallet, state="opened", opened_at=now, label="cryptoadmin-broadcast-test"
    )
    return wallet


@override_settings(METRICS_TOKEN=TOKEN)
def test_it_refuses_anonymous_wrong_token_and_non_staff(client, outsider):
    assert client.get("/metrics").status_code == 401
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token-0123456789abcdef").status_code
        == 401
    )
    client.force_login(outsider)
    assert client.get("/metrics").status_code == 403


def test_it_refuses_a_staff_session_without_its_second_factor(client, viewer):
    client.force_login(viewer, second_factor=False)
    assert client.get("/metrics").status_code == 403
    client.force_login(viewer)
    assert client.get("/metrics").status_code == 200


@override_settings(METRICS_TOKEN="")
def test_it_refuses_any_bearer_when_no_token_is_set(client):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


@override_settings(METRICS_TOKEN=TOKEN)
def test_it_counts_network_transactions_and_outgoing_by_currency_and_state(client, money, viewer):
    samples = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    for state in NT.State.values:  # every state of the model, zero-filled
        expected = NT.objects.filter(currency__code="BTC", type="deposit", state=state).count()
        assert (
            value(
                samples,
                "cryptoadmin_network_transactions",
                currency="BTC",
                type="deposit",
                state=state,
            )
            == expected
        )
    assert (
        value(
            samples,
            "cryptoadmin_network_transactions",
            currency="BTC",
            type="deposit",
            state="open",
        )
        == 2
    )
    assert (
        value(
            samples,
            "cryptoadmin_network_transactions",
            currency="BTC",
            type="broadcast",
            state="closed",
        )
        == 1
    )
    assert (
        value(samples, "cryptoadmin_network_transactions_stuck", currency="BTC", type="deposit")
        == 1
    )
    assert (
        value(samples, "cryptoadmin_network_transactions_flagged", currency="BTC", type="deposit")
        == 1
    )
    assert (
        value(samples, "cryptoadmin_network_transactions_flagged", currency="BTC", type="broadcast")
        == 0
    )
    for state in OutgoingTransaction.State.values:
        rows = OutgoingTransaction.objects.filter(state=state)
        assert (
            value(samples, "cryptoadmin_outgoing_transactions", currency="BTC", state=state)
            == rows.count()
        )
        assert value(
            samples, "cryptoadmin_outgoing_amount_units", currency="BTC", state=state
        ) == sum(o.amount for o in rows)
    assert (
        value(samples, "cryptoadmin_outgoing_amount_units", currency="BTC", state="queued")
        == 3_500_000
    )
    assert (
        value(samples, "cryptoadmin_broadcasts_interrupted", currency="BTC", wallet=money.name) == 1
    )

    # A staff session sees the same figures.
    client.force_login(viewer)
    assert (
        value(
            scrape(client), "cryptoadmin_broadcasts_interrupted", currency="BTC", wallet=money.name
        )
        == 1
    )


@override_settings(METRICS_TOKEN=TOKEN)
def test_it_reports_each_node_up_with_its_height_or_down(client, wallet, node):
    Wallet.objects.create(
        name="down", currency=wallet.currency, backend_settings={"url": "http://u:p@127.0.0.1:9"}
    )
    samples = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert value(samples, "cryptoadmin_node_up", currency="BTC", wallet=wallet.name) == 1
    assert value(
        samples, "cryptoadmin_node_block_height", currency="BTC", wallet=wallet.name
    ) == node.rpc("getblockcount")
    assert value(samples, "cryptoadmin_node_up", currency="BTC", wallet="down") == 0
    assert (
        "cryptoadmin_node_block_height",
        (("currency", "BTC"), ("wallet", "down")),
    ) not in samples


@override_settings(METRICS_TOKEN=TOKEN)
def test_it_reports_poll_cycle_duration_and_last_success_age_per_schedule(client):
    from django_q.models import Schedule, Task

    now = timezone.now()
    make_currency("ETH")
    Schedule.objects.update_or_create(
        name="ledger.update_confirmations",
        defaults=dict(
            func="ledger.tasks.poll_all_currencies", schedule_type="I", minutes=1, repeats=-1
        ),
    )
    # (id, name, success, started and stopped seconds ago): the last success took 0.5 s.
    for key, name, success, started, stopped in (
        ("a", "old", True, 300, 298),
        ("b", "last", True, 120.5, 120),
        ("c", "failed", False, 10, 1),
    ):
        Task.objects.create(
            id=key * 32,
            name=name,
            func="ledger.tasks.poll_all_currencies",
            success=success,
            started=now - timedelta(seconds=started),
            stopped=now - timedelta(seconds=stopped),
        )
    samples = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert value(samples, "cryptoadmin_poll_cycle_seconds") == pytest.approx(0.5)
    age = value(
        samples,
        "cryptoadmin_schedule_last_success_age_seconds",
        schedule="ledger.update_confirmations",
    )
    assert 120 <= age < 180
    assert Schedule.objects.filter(
        name="ledger.rescan_addresses"
    ).exists()  # registered, never ran here
    assert (
        "cryptoadmin_schedule_last_success_age_seconds",
        (("schedule", "ledger.rescan_addresses"),),
    ) not in samples
    # Zero-filled for a currency without rows.
    assert value(samples, "cryptoadmin_outgoing_transactions", currency="ETH", state="queued") == 0


@override_settings(METRICS_TOKEN=TOKEN)
def test_it_reports_this_workers_balance_cache_hits_misses_and_loads(client, wallet, balance_cache):
    import os

    credit_user(wallet, "bob", 7)
    assert balance_cache.get_balance("bob", "BTC", 201) == 7  # a miss and a load
    assert balance_cache.get_balance("bob", "BTC", 201) == 7  # a hit
    stats = balance_cache.stats()
    samples = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    pid = str(os.getpid())
    assert value(samples, "cryptoadmin_balance_cache_hits_total", pid=pid) == stats["hits"] >= 1
    assert value(samples, "cryptoadmin_balance_cache_misses_total", pid=pid) == stats["misses"] >= 1
    assert value(samples, "cryptoadmin_balance_cache_loads_total", pid=pid) == stats["loads"] == 1
    assert value(samples, "cryptoadmin_balance_cache_users", pid=pid) == 1
