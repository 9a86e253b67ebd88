"""Importing a wallet's unaccounted balance: exactly once, pending outgoing counted as held."""

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from ledger import imports, services
from ledger.models import Account, Transaction
from tests.support import make_currency, make_wallet, pay_from_outside

BTC = 10**8


@pytest.fixture
def managed(db, two_nodes):
    """A wallet that held 5 BTC before it came under management."""
    ours, outside = two_nodes
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "5", mine=1)
    btc = make_currency("BTC")
    wallet = make_wallet(btc, ours)
    return wallet, ours, outside


def _imports():
    return list(Transaction.objects.filter(kind="import").values_list("amount", flat=True))


def test_it_imports_the_pre_management_balance_exactly_once(managed):
    wallet, *_ = managed
    target = services.user_account("treasury", wallet.currency)
    assert imports.preview(wallet).unaccounted == 5 * BTC
    entry = imports.import_unaccounted_balance(wallet.pk, target.pk)
    assert entry.amount == 5 * BTC
    assert entry.label == f"Import #1 from wallet {wallet.name}"
    with pytest.raises(imports.NothingToImport):
        imports.import_unaccounted_balance(wallet.pk, target.pk)
    assert _imports() == [5 * BTC]


def test_it_counts_pending_outgoing_as_held(managed):
    wallet, *_ = managed
    alice = services.user_accounts("alice", wallet.currency)
    imports.import_unaccounted_balance(wallet.pk, alice[201].pk)
    # Alice queues a 2 BTC withdrawal: 201 -> 204. The coins are still in the wallet.
    services.post(alice[201], alice[204], 2 * BTC, "pending_outgoing")
    # The first version subtracted only 201 and would import those 2 BTC again.
    assert imports.preview(wallet).unaccounted == 0
    with pytest.raises(imports.NothingToImport):
        imports.import_unaccounted_balance(wallet.pk, alice[201].pk)
    assert _imports() == [5 * BTC]


def test_it_leaves_uncredited_deposits_to_the_tracker(managed):
    wallet, ours, outside = managed
    treasury = services.user_account("treasury", wallet.currency)
    address = services.new_receiving_address(wallet, "bob")
    pay_from_outside(ours, outside, address.address, "3")  # unconfirmed, not credited
    preview = imports.preview(wallet)
    assert (preview.uncredited, preview.unaccounted) == (3 * BTC, 5 * BTC)
    assert imports.import_unaccounted_balance(wallet.pk, treasury.pk).amount == 5 * BTC


def test_it_refuses_when_the_books_hold_more_than_the_node(managed):
    wallet, *_ = managed
    bob = services.user_account("bob", wallet.currency)
    # A credit with no coins behind it: the books now claim 7 BTC.
    services.post(services.system_account(wallet, Account.Code.NETWORK), bob, 7 * BTC, "deposit")
    with pytest.raises(imports.BooksExceedNode, match="2.00000000 BTC more than the node"):
        imports.import_unaccounted_balance(wallet.pk, bob.pk)
    assert _imports() == []


def test_it_tells_when_the_amount_changed_since_shown(managed):
    wallet, ours, outside = managed
    target = services.user_account("treasury", wallet.currency)
    shown = imports.preview(wallet).unaccounted
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "1", mine=1)
    with pytest.raises(imports.AmountChanged) as info:
        imports.import_unaccounted_balance(wallet.pk, target.pk, expected=shown)
    assert info.value.current == 6 * BTC
    assert _imports() == []


def test_it_refuses_an_account_of_another_currency(managed):
    wallet, *_ = managed
    ltc_account = services.user_account("alice", make_currency("LTC"))
    with pytest.raises(imports.WalletImportError, match="LTC account"):
        imports.import_unaccounted_balance(wallet.pk, ltc_account.pk)


@pytest.mark.django_db(transaction=True)
def test_it_imports_once_when_two_admins_confirm_together(two_nodes):
    ours, outside = two_nodes
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "5", mine=1)
    wallet = make_wallet(make_currency("BTC"), ours)
    target = services.user_account("treasury", wallet.currency)
    expected = imports.preview(wallet).unaccounted
    barrier, results = threading.Barrier(2), []

    def confirm():
        try:
            barrier.wait()
            results.append(
                imports.import_unaccounted_balance(wallet.pk, target.pk, expected=expected).amount
            )
        except imports.NothingToImport:
            results.append("nothing")
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == [5 * BTC, "nothing"]
    assert _imports() == [5 * BTC]


def test_it_imports_through_the_command(managed):
    wallet, *_ = managed
    target = services.user_account("treasury", wallet.currency)
    call_command("import_wallet_balance", wallet.name, str(target.pk), "--yes")
    assert _imports() == [5 * BTC]
    call_command(
        "import_wallet_balance", wallet.name, str(target.pk), "--yes"
    )  # nothing left: not an error
    assert _imports() == [5 * BTC]


def test_it_refuses_bad_command_input_and_writes_nothing(managed):
    wallet, *_ = managed
    with pytest.raises(CommandError, match="Unknown wallet"):
        call_command("import_wallet_balance", "nope", "1", "--yes")
    with pytest.raises(CommandError, match="Unknown account"):
        call_command("import_wallet_balance", wallet.name, "999999", "--yes")
    with pytest.raises(CommandError, match="--yes"):
        call_command(
            "import_wallet_balance",
            wallet.name,
            str(services.user_account("t", wallet.currency).pk),
        )
    assert _imports() == []


def test_it_previews_and_confirms_only_with_the_import_permission(managed, viewer, operator):
    from django.core.exceptions import PermissionDenied

    from tests.support import grant

    wallet, *_ = managed
    target = services.user_account("treasury", wallet.currency)
    with pytest.raises(PermissionDenied):
        imports.preview_import(wallet, target, by=viewer)
    with pytest.raises(PermissionDenied):
        imports.confirm_import(wallet, target, 5 * BTC, by=viewer)
    assert _imports() == []
    grant(operator, "ledger.import_wallet_balance")
    shown = imports.preview_import(wallet, target, by=operator).unaccounted
    assert imports.confirm_import(wallet, target, shown, by=operator).created_by == operator
    assert _imports() == [5 * BTC]


def test_it_refuses_while_a_broadcast_is_unsettled_then_imports_the_right_amount(managed, operator):
    """A broadcaster that died after its send, before booking it: the node has paid, the books
    do not know yet. Unowned coins arriving meanwhile must not be imported as "what the node
    holds beyond the books" (that would absorb the unbooked payment and its fee)."""
    from broadcasts.broadcaster import Broadcaster
    from broadcasts.closing import close_broadcast_by_hand, search_on_chain
    from broadcasts.models import Broadcast
    from broadcasts.withdrawals import send_external
    from cryptoadmin import faults
    from ledger.actors import SYSTEM
    from tests.broadcast_helpers import end_lease

    wallet, ours, outside = managed
    alice = services.user_accounts("alice", wallet.currency)
    imports.import_unaccounted_balance(wallet.pk, alice[201].pk)
    send_external(alice[201], outside.rpc("getnewaddress"), 2 * BTC)
    with faults.armed({"broadcast.after_raw_send": "raise"}), pytest.raises(faults.InjectedFault):
        Broadcaster(wallet).run()
    broadcast = Broadcast.objects.get()
    assert broadcast.state == Broadcast.State.OPENED
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "3", mine=1)
    treasury = services.user_account("treasury", wallet.currency)
    before = Transaction.objects.count()

    for attempt in (
        lambda: imports.import_unaccounted_balance(wallet.pk, treasury.pk),
        lambda: imports.preview_import(wallet, treasury, by=SYSTEM),
    ):
        with pytest.raises(imports.WalletImportError, match=f"broadcast #{broadcast.pk}"):
            attempt()
        end_lease(broadcast)  # in flight or interrupted: refused alike
    with pytest.raises(CommandError, match="settled first"):
        call_command("import_wallet_balance", wallet.name, str(treasury.pk), "--yes")
    assert (_imports(), Transaction.objects.count()) == ([5 * BTC], before)

    # A person settles it from the chain; then the import takes exactly the unowned coins.
    [txid] = search_on_chain(broadcast, by=operator)
    close_broadcast_by_hand(
        broadcast, Broadcast.CloseMethod.REACHED_NETWORK, by=operator, reason="on chain", txid=txid
    )
    assert imports.import_unaccounted_balance(wallet.pk, treasury.pk).amount == 3 * BTC


def test_it_refuses_when_a_broadcast_opens_while_the_node_is_asked(managed, monkeypatch):
    """The broadcaster takes no lock the import holds: one that opens a broadcast while the
    import asks the node makes the node's answer and the books disagree; checked again after."""
    from django.utils import timezone

    from broadcasts.models import Broadcast

    wallet, *_ = managed
    target = services.user_account("treasury", wallet.currency)
    real = imports.reconcile

    def reconcile_while_a_broadcast_opens(w):
        result = real(w)
        Broadcast.objects.create(wallet=w, state="opened", opened_at=timezone.now(), label="x-1")
        return result

    monkeypatch.setattr(imports, "reconcile", reconcile_while_a_broadcast_opens)
    with pytest.raises(imports.BroadcastUnsettled, match="broadcast #"):
        imports.import_unaccounted_balance(wallet.pk, target.pk)
    assert _imports() == []
