"""The crediting rules of apply() and record_deposits(), fed TxInfo objects: no node needed.

One rule: a deposit row leaves the polled states only in the database transaction that
credits it, or when an operator closes it by hand, and then nothing credits it."""

import pytest

from cryptoadmin import faults
from ledger import services
from ledger.backends.base import TxInfo, TxOutput
from ledger.confirmations.apply import apply
from ledger.confirmations.closing import close_rows_by_hand
from ledger.confirmations.crediting import record_deposits
from ledger.models import POLLED_STATES, Address, NetworkTransaction, Transaction, Wallet
from tests.support import make_currency, offline_wallet

pytestmark = pytest.mark.django_db

TXID = "ab" * 32


@pytest.fixture
def currency():
    return make_currency("BTC", crediting_threshold=2, polling_threshold=4)


def receiving(wallet, user_id, address):
    account = services.user_account(user_id, wallet.currency)
    return Address.objects.create(
        currency=wallet.currency,
        wallet=wallet,
        account=account,
        address=address,
        kind=Address.Kind.RECEIVING,
    )


def paying(txid, confirmations, **outputs):
    return TxInfo(
        txid=txid,
        confirmations=confirmations,
        fee=None,
        outputs=tuple(
            TxOutput(address=a, category="receive", amount=n) for a, n in outputs.items()
        ),
    )


def polled(wallet):
    return list(NetworkTransaction.objects.filter(wallet=wallet, state__in=POLLED_STATES))


def credited(user_id, currency):
    return services.balance(services.user_account(user_id, currency))


@pytest.fixture
def deposit(currency):
    wallet = offline_wallet(currency, "w-a")
    receiving(wallet, "alice", "addr-alice")
    row = NetworkTransaction.objects.create(
        currency=currency, wallet=wallet, txid=TXID, type="deposit"
    )
    return wallet, row


def test_it_keeps_a_deposit_polled_when_crediting_fails_at_the_polling_threshold(
    deposit, currency, monkeypatch
):
    wallet, row = deposit
    info = paying(TXID, 4, **{"addr-alice": 5000})

    def broken_post(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "post", broken_post)
    with pytest.raises(RuntimeError):
        apply(polled(wallet), {TXID: info}, currency)
    row.refresh_from_db()
    assert (row.state, row.credited_at) == ("open", None)  # never closed without its credit
    monkeypatch.undo()
    summary = apply(polled(wallet), {TXID: info}, currency)
    row.refresh_from_db()
    assert summary.credited == 1 and row.state == "closed" and row.credited_at is not None
    assert credited("alice", currency) == 5000


def test_it_closes_and_credits_in_one_transaction_at_an_armed_fault(deposit, currency):
    wallet, row = deposit
    info = paying(TXID, 5, **{"addr-alice": 7000})
    with faults.armed({"credit.before_commit": "raise"}) as reached:
        with pytest.raises(faults.InjectedFault):
            apply(polled(wallet), {TXID: info}, currency)
        assert reached["credit.before_commit"] == 1
    row.refresh_from_db()
    assert (row.state, row.credited_at, row.confirmations) == ("open", None, 5)
    assert not Transaction.objects.filter(kind="deposit").exists()
    apply(polled(wallet), {TXID: info}, currency)
    apply(polled(wallet), {TXID: info}, currency)
    row.refresh_from_db()
    assert row.state == "closed" and credited("alice", currency) == 7000


@pytest.mark.parametrize("confirmations", [2, 4])  # crediting threshold, polling threshold
def test_it_never_undoes_or_credits_a_deposit_closed_by_hand_meanwhile(
    deposit, currency, operator, confirmations
):
    wallet, row = deposit
    rows = polled(wallet)  # the poller read the row before the operator's close
    close_rows_by_hand([row.pk], operator, "suspected double spend: do not credit")
    summary = apply(rows, {TXID: paying(TXID, confirmations, **{"addr-alice": 5000})}, currency)
    row.refresh_from_db()
    assert (row.state, row.credited_at, row.close_reason) == (
        "closed_by_hand",
        None,
        "suspected double spend: do not credit",
    )
    assert row.confirmations == 0  # the poller wrote nothing on it
    assert summary.credited == 0 and credited("alice", currency) == 0


def test_it_never_touches_a_row_closed_by_hand_on_a_later_error(deposit, currency, operator):
    wallet, row = deposit
    rows = polled(wallet)
    close_rows_by_hand([row.pk], operator, "checked by hand")
    apply(rows, {}, currency)  # the node lost it: would be "vanished"
    row.refresh_from_db()
    assert row.state == "closed_by_hand" and row.last_error == "" and row.last_checked_at is None


def test_it_credits_the_second_deposit_of_a_loop_after_the_first_one_fails(currency, monkeypatch):
    wallet = offline_wallet(currency, "w-a")
    receiving(wallet, "alice", "addr-alice")
    receiving(wallet, "bob", "addr-bob")
    a = NetworkTransaction.objects.create(
        currency=currency, wallet=wallet, txid="a1" * 32, type="deposit"
    )
    b = NetworkTransaction.objects.create(
        currency=currency, wallet=wallet, txid="b2" * 32, type="deposit"
    )
    infos = {
        a.txid: paying(a.txid, 4, **{"addr-alice": 100}),
        b.txid: paying(b.txid, 4, **{"addr-bob": 200}),
    }
    with faults.armed({"credit.before_commit": "1*raise"}):
        with pytest.raises(faults.InjectedFault):
            apply(polled(wallet), infos, currency)
    assert {r.state for r in NetworkTransaction.objects.all()} == {"open"}
    apply(polled(wallet), infos, currency)
    assert (credited("alice", currency), credited("bob", currency)) == (100, 200)
    assert {r.state for r in NetworkTransaction.objects.all()} == {"closed"}


def test_it_records_one_deposit_per_wallet_for_a_transaction_paying_two_wallets(currency):
    a, b = offline_wallet(currency, "w-a"), offline_wallet(currency, "w-b")
    receiving(a, "alice", "addr-alice")
    receiving(b, "bob", "addr-bob")
    info = paying(TXID, 0, **{"addr-alice": 300, "addr-bob": 700})
    assert record_deposits(a, [info]) == 1
    assert record_deposits(b, [info]) == 1
    rows = {r.wallet_id: r for r in NetworkTransaction.objects.filter(txid=TXID)}
    assert set(rows) == {a.pk, b.pk}
    assert (
        apply(
            polled(a), {TXID: paying(TXID, 2, **{"addr-alice": 300, "addr-bob": 700})}, currency
        ).credited
        == 1
    )
    assert (
        apply(
            polled(b), {TXID: paying(TXID, 2, **{"addr-alice": 300, "addr-bob": 700})}, currency
        ).credited
        == 1
    )
    assert (credited("alice", currency), credited("bob", currency)) == (300, 700)
    # Each wallet's row credits only its own addresses: one entry each.
    assert {
        (t.network_transaction.wallet_id, t.amount)
        for t in Transaction.objects.filter(kind="deposit")
    } == {(a.pk, 300), (b.pk, 700)}


def test_it_flags_a_conflicted_deposit_that_was_never_credited(deposit, currency):
    wallet, row = deposit
    apply(polled(wallet), {TXID: paying(TXID, -1, **{"addr-alice": 5000})}, currency)
    row.refresh_from_db()
    assert (row.state, row.credited_at, row.flagged) == ("conflicted", None, True)
    assert "conflicted" in row.flag_reason


def test_it_shows_a_never_credited_conflicted_deposit_on_the_admin_home(
    deposit, currency, client, superuser
):
    wallet, row = deposit
    apply(polled(wallet), {TXID: paying(TXID, -3, **{"addr-alice": 5000})}, currency)
    client.force_login(superuser)
    body = client.get("/admin/").content.decode()
    assert "1 conflicted deposit" in body
    assert "state__exact=conflicted" in body


def test_it_refuses_a_deposit_closed_without_its_credit_in_the_database(deposit):
    from django.db import IntegrityError, transaction

    wallet, row = deposit
    with (
        pytest.raises(IntegrityError, match="network_tx_deposit_closed_only_credited"),
        transaction.atomic(),
    ):
        NetworkTransaction.objects.filter(pk=row.pk).update(state="closed")


@pytest.mark.django_db(transaction=True)
def test_it_reopens_a_deposit_an_earlier_version_closed_uncredited_and_then_credits_it(currency):
    """Migration 0006 on a database where the old code left a deposit closed and uncredited."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = (
        ("ledger", "0005_wallet_reconcile_permission"),
        ("ledger", "0006_deposits_per_wallet_closed_only_credited"),
    )
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    old = MigrationExecutor(connection).loader.project_state([before]).apps
    wallet = old.get_model("ledger", "Wallet").objects.create(
        name="w-a",
        currency_id=currency.pk,
        backend="bitcoind",
        backend_settings={"url": "http://u:p@127.0.0.1:9"},
    )
    old.get_model("ledger", "NetworkTransaction").objects.create(
        currency_id=currency.pk,
        wallet_id=wallet.pk,
        txid=TXID,
        type="deposit",
        state="closed",
        confirmations=9,
    )
    executor = MigrationExecutor(connection)
    executor.migrate([after])
    # Back to the latest schema of every app, whatever later migrations were unapplied above.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    row = NetworkTransaction.objects.get(txid=TXID)
    assert (row.state, row.closed_at, row.credited_at, row.flagged) == ("open", None, None, True)
    assert "reopened by migration 0006" in row.flag_reason
    wallet = Wallet.objects.get(pk=wallet.pk)
    receiving(wallet, "alice", "addr-alice")
    assert (
        apply(polled(wallet), {TXID: paying(TXID, 9, **{"addr-alice": 4200})}, currency).credited
        == 1
    )
    row.refresh_from_db()
    assert row.state == "closed" and credited("alice", currency) == 4200


def test_it_flags_a_deposit_due_a_credit_paying_none_of_its_wallets_addresses_and_keeps_polling(
    deposit, currency
):
    wallet, row = deposit
    for _ in range(2):
        summary = apply(
            polled(wallet), {TXID: paying(TXID, 6, **{"addr-elsewhere": 5000})}, currency
        )
    row.refresh_from_db()
    assert summary.credited == 0 and row.state == "open" and row.flagged
    assert row.flag_reason.count("pays none of this wallet's receiving addresses") == 1


def test_it_shows_a_credited_conflicted_deposit_apart_and_drops_the_banner_once_closed_by_hand(
    deposit, currency, client, superuser, operator
):
    wallet, row = deposit
    apply(polled(wallet), {TXID: paying(TXID, 2, **{"addr-alice": 5000})}, currency)  # credited
    apply(polled(wallet), {TXID: paying(TXID, -1, **{"addr-alice": 5000})}, currency)
    client.force_login(superuser)
    body = client.get("/admin/").content.decode()
    assert "1 conflicted deposit already credited" in body and "never credited" not in body
    close_rows_by_hand([row.pk], operator, "checked: double spend, user informed")
    assert "conflicted deposit" not in client.get("/admin/").content.decode()
