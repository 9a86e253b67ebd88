"""The invariants every money path must keep, checked against the real node.

`check(wallet, node)` returns a list of violations (strings; empty when all is well):

- each deposit to one of our receiving addresses is credited exactly once, with the amount
  the chain says, and nothing is credited that the chain does not hold;
- each outgoing transaction is paid at most once on chain, and is either paid (broadcasted,
  and its address received exactly what the books sent it), or still queued / returned
  (and then nothing paid it);
- the books' wallet balance equals the node's, to the satoshi, with nothing uncredited;
- every account of a currency sums to zero;
- every account's running total equals the sum of its ledger rows;
- each deposit's and withdrawal's events, replayed in sequence, give the database's state
  (numbered 1..n; a deposit's last confirmations and its one credit, a withdrawal's last state).

"Books equal the node" holds only at quiescence: `quiesce()` first mines on the outside node
and runs poll and broadcaster cycles until nothing changes any more.
"""

from __future__ import annotations

import time
from collections import defaultdict

from django.db.models import Count, F, Sum

from ledger import services as ledger
from ledger.models import Account, Address, Currency, NetworkTransaction, Transaction, Wallet
from ledger.money import to_units
from tests.event_invariants import events_replay_state

NT = NetworkTransaction


# -- what the node says ----------------------------------------------------------------------


def node_entries(node) -> list[dict]:
    """Every wallet entry of the node (listtransactions pages until a short page)."""
    out, skip, page = [], 0, 1000
    while True:
        rows = node.rpc("listtransactions", "*", page, skip)
        out.extend(rows)
        if len(rows) < page:
            return out
        skip += page


def _on_chain(entry) -> bool:
    # A conflicted transaction (negative confirmations) paid nobody.
    return int(entry.get("confirmations", 0)) >= 0


# -- the four invariants ---------------------------------------------------------------------


def deposits_credited_once(wallet: Wallet, entries) -> list[str]:
    currency = wallet.currency
    ours = dict(
        Address.objects.filter(wallet=wallet, kind=Address.Kind.RECEIVING).values_list(
            "address", "id"
        )
    )
    chain: dict[tuple[str, int], int] = defaultdict(int)  # (txid, address id) -> units received
    confirmations: dict[str, int] = {}
    for e in entries:
        if e.get("category") == "receive" and e.get("address") in ours and _on_chain(e):
            chain[(e["txid"], ours[e["address"]])] += to_units(e["amount"], currency.decimals)
            confirmations[e["txid"]] = int(e["confirmations"])
    books = {
        (r["network_transaction__txid"], r["address_id"]): (r["s"], r["n"])
        for r in Transaction.objects.filter(kind=Transaction.Kind.DEPOSIT, address__wallet=wallet)
        .values("network_transaction__txid", "address_id")
        .annotate(s=Sum("amount"), n=Count("id"))
    }
    out = []
    for key, amount in sorted(chain.items()):
        txid, _ = key
        if confirmations[txid] < currency.crediting_threshold:
            # Not due yet; at quiescence that means the chain never took it.
            out.append(
                f"deposit {txid} to address #{key[1]}: {amount} with only {confirmations[txid]} "
                "confirmation(s) at quiescence"
            )
            continue
        credited, n = books.get(key, (0, 0))
        if n != 1 or credited != amount:
            out.append(
                f"deposit {txid} to address #{key[1]}: {amount} on chain with "
                f"{confirmations[txid]} confirmations, credited {n} time(s) for {credited}"
            )
    for key, (credited, n) in sorted(books.items()):
        if key not in chain:
            out.append(
                f"deposit {key[0]} to address #{key[1]} credited {n} time(s) for {credited}, "
                "but the chain holds no such payment"
            )
    # A credit without its claim (or a claim without credit) means the claim and the money
    # did not move together.
    claimed = set(
        NT.objects.filter(
            wallet=wallet, type=NT.Type.DEPOSIT, credited_at__isnull=False
        ).values_list("txid", flat=True)
    )
    credited_txids = {k[0] for k in books}
    for txid in sorted(claimed ^ credited_txids):
        out.append(
            f"deposit {txid}: credited_at {'set' if txid in claimed else 'empty'} but "
            f"{'no' if txid in claimed else 'a'} ledger credit"
        )
    return out


def outgoing_paid_at_most_once(wallet: Wallet, entries) -> list[str]:
    from broadcasts.models import Broadcast, OutgoingTransaction

    OT = OutgoingTransaction
    currency = wallet.currency
    paid: dict[str, int] = defaultdict(int)  # address -> units the node's wallet sent it
    payments: dict[str, set] = defaultdict(set)
    for e in entries:
        if e.get("category") == "send" and _on_chain(e):
            paid[e["address"]] += to_units(-e["amount"], currency.decimals)
            payments[e["address"]].add(e["txid"])
    booked: dict[str, int] = defaultdict(int)
    out = []
    for row in OT.objects.filter(wallet=wallet).select_related("broadcast").order_by("pk"):
        if row.state == OT.State.BROADCASTED:
            booked[row.address] += row.amount
            b = row.broadcast
            if b is None or not b.txid or b.txid not in payments.get(row.address, ()):
                out.append(
                    f"outgoing #{row.pk} is broadcasted but its broadcast's txid "
                    f"{getattr(b, 'txid', None)} does not pay {row.address} on chain"
                )
        elif row.state == OT.State.BROADCASTING:
            state = row.broadcast.state if row.broadcast else None
            out.append(
                f"outgoing #{row.pk} is stuck in broadcast #{row.broadcast_id} ({state}): "
                "neither paid, queued nor returned"
            )
        # queued (or returned): the books still hold it; nothing may have paid it (checked below).
    for address in sorted(set(paid) | set(booked)):
        if address in ledger_addresses(wallet):
            continue  # paying one of our own receiving addresses: a deposit too, see above
        if paid.get(address, 0) != booked.get(address, 0):
            out.append(
                f"{address}: the node paid {paid.get(address, 0)} in "
                f"{len(payments.get(address, ()))} transaction(s), the books sent "
                f"{booked.get(address, 0)}"
            )
    for b in Broadcast.objects.filter(
        wallet=wallet, state__in=[Broadcast.State.OPENED, Broadcast.State.COLLECTED]
    ):
        out.append(f"broadcast #{b.pk} is still {b.state} at quiescence (interrupted)")
    return out


def signed_attempts_conflict(wallet: Wallet) -> list[str]:
    """One payment by construction, from the database alone: for every withdrawal, every two
    signed transactions that ever contained it spend a common coin (so at most one of them can
    ever confirm), unless one of them is recorded as provably dead. The coins are read from
    the stored raw transactions (ledger.rawtx), and must be the ones recorded with them."""
    from itertools import combinations

    from broadcasts.models import Broadcast, BroadcastMember
    from ledger import rawtx

    attempts = {b.pk: b for b in Broadcast.objects.filter(wallet=wallet).exclude(raw_tx="")}
    coins, out = {}, []
    for pk, b in attempts.items():
        try:
            coins[pk] = rawtx.coins(b.raw_tx)
        except (rawtx.RawTxError, ValueError):
            out.append(f"broadcast #{pk}: its raw transaction cannot be decoded")
            coins[pk] = set(b.inputs)
            continue
        if coins[pk] != set(b.inputs):
            out.append(f"broadcast #{pk}: the coins recorded are not those its transaction spends")
    members: dict[int, list[int]] = defaultdict(list)
    for outgoing_id, broadcast_id in BroadcastMember.objects.filter(
        broadcast_id__in=list(attempts)
    ).values_list("outgoing_id", "broadcast_id"):
        members[outgoing_id].append(broadcast_id)
    for outgoing_id, ids in sorted(members.items()):
        for a, b in combinations(sorted(ids), 2):
            if attempts[a].dead_reason or attempts[b].dead_reason:
                continue
            if not coins[a] & coins[b]:
                out.append(
                    f"outgoing #{outgoing_id} is in signed broadcasts #{a} and #{b}, which share "
                    "no coin and are not provably dead: both could confirm"
                )
    return out


def ledger_addresses(wallet: Wallet) -> set[str]:
    return set(Address.objects.filter(wallet=wallet).values_list("address", flat=True))


def books_equal_node(wallet: Wallet) -> list[str]:
    from ledger.reconcile import reconcile

    r = reconcile(wallet)
    out = []
    if r.node_balance != r.books_balance:
        out.append(
            f"books hold {r.books_balance}, the node {r.node_balance} "
            f"(difference {r.node_balance - r.books_balance}, uncredited {r.uncredited})"
        )
    if r.uncredited:
        out.append(f"{r.uncredited} received on our addresses and never credited")
    return out


def accounts_sum_to_zero() -> list[str]:
    out = []
    for currency in Currency.objects.all():
        ids = list(Account.objects.filter(currency=currency).values_list("id", flat=True))
        total = sum(ledger.balances(ids).values()) if ids else 0
        if total != 0:
            out.append(f"{currency.code}: the accounts sum to {total}, not 0")
    # A row whose currency is not its accounts' would escape the sum above.
    stray = (
        Transaction.objects.exclude(source__currency=F("currency")).count()
        + Transaction.objects.exclude(destination__currency=F("currency")).count()
    )
    if stray:
        out.append(f"{stray} ledger row(s) move money between accounts of another currency")
    return out


def running_totals_agree() -> list[str]:
    """The running totals the pages read (ledger_accountbalance) against the rows."""
    return [
        f"account {d['account_id']}: running total {d['running_total']}, rows {d['from_rows']}"
        for d in ledger.balance_differences()
    ]


def check(wallet: Wallet, node, before=frozenset()) -> list[str]:
    """Every invariant, against `node` (the wallet's own node). Call at quiescence.

    `before`: txids the node's wallet held before these books began (a node reused by
    several tests), left out of the per-transaction checks."""
    wallet = Wallet.objects.select_related("currency").get(pk=wallet.pk)
    entries = [e for e in node_entries(node) if e.get("txid") not in before]
    return (
        deposits_credited_once(wallet, entries)
        + outgoing_paid_at_most_once(wallet, entries)
        + signed_attempts_conflict(wallet)
        + books_equal_node(wallet)
        + accounts_sum_to_zero()
        + running_totals_agree()
        + events_replay_state(wallet)
    )


def check_blockio(wallet: Wallet, fake) -> list[str]:
    """Every invariant for a block.io wallet, against the loopback block.io of the tests
    (tests/blockio_server.py): its sent transactions stand for the node wallet's sends."""
    from decimal import Decimal

    wallet = Wallet.objects.select_related("currency").get(pk=wallet.pk)
    entries = [
        {
            "category": "send",
            "address": address,
            "amount": -Decimal(units).scaleb(-wallet.currency.decimals),
            "txid": sent["txid"],
            "confirmations": fake.txs[sent["txid"]]["confirmations"],
        }
        for sent in fake.sent
        for address, units in sent["amounts"]
    ]
    return (
        deposits_credited_once(wallet, entries)
        + outgoing_paid_at_most_once(wallet, entries)
        + books_equal_node(wallet)
        + accounts_sum_to_zero()
        + events_replay_state(wallet)
    )


# -- quiescence --------------------------------------------------------------------------------


def wait_synced(ours, outside, timeout=30.0):
    deadline = time.monotonic() + timeout
    target = outside.rpc("getbestblockhash")
    while ours.rpc("getbestblockhash") != target:
        if time.monotonic() > deadline:
            raise AssertionError("our node did not follow the outside node in time")
        time.sleep(0.05)


def wait_seen(node, txid, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return node.rpc("gettransaction", txid)
        except Exception:
            if time.monotonic() > deadline:
                raise AssertionError(f"{txid} never reached the node") from None
            time.sleep(0.05)


def mine(ours, outside, n=1):
    """Mine on the outside node once our node's pending transactions reached it."""
    deadline = time.monotonic() + 10
    mempool = set(ours.rpc("getrawmempool"))
    while mempool - set(outside.rpc("getrawmempool")) and time.monotonic() < deadline:
        time.sleep(0.05)
    outside.generate(n)
    wait_synced(ours, outside)


def _signature(wallet: Wallet, ours):
    from broadcasts.models import Broadcast, OutgoingTransaction

    return (
        tuple(
            NT.objects.filter(wallet=wallet)
            .values_list("state", "confirmations", "credited_at")
            .order_by("pk")
        ),
        tuple(
            OutgoingTransaction.objects.filter(wallet=wallet).values_list("state").order_by("pk")
        ),
        tuple(Broadcast.objects.filter(wallet=wallet).values_list("state", "fee").order_by("pk")),
        Transaction.objects.count(),
        tuple(ours.rpc("getrawmempool")),
    )


def cycle(wallet: Wallet) -> None:
    """One poll and one broadcaster run, in this process."""
    from broadcasts.broadcaster import Broadcaster
    from ledger.confirmations.cycle import poll_wallet

    wallet = Wallet.objects.select_related("currency").get(pk=wallet.pk)
    poll_wallet(wallet)
    Broadcaster(wallet).run()
    wallet = Wallet.objects.select_related("currency").get(pk=wallet.pk)
    poll_wallet(wallet)


def wait_sends_over(wallet: Wallet, limit=120.0) -> None:
    """A send still in flight (its lease running, when broadcasts have one) is neither
    settled nor interrupted yet: wait for its lease to end."""
    from django.utils import timezone

    from broadcasts.models import Broadcast

    if not any(f.name == "sending_until" for f in Broadcast._meta.get_fields()):
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        until = (
            Broadcast.objects.filter(
                wallet=wallet, state=Broadcast.State.OPENED, sending_until__gt=timezone.now()
            )
            .order_by("-sending_until")
            .values_list("sending_until", flat=True)
            .first()
        )
        if until is None:
            return
        time.sleep(min(max((until - timezone.now()).total_seconds(), 0) + 0.2, 5))


def quiesce(wallet: Wallet, ours, outside, run_cycle=cycle, max_rounds=12, person=None) -> int:
    """Mine and cycle until a round changes nothing and no transaction waits for a block.

    `person` (tests.support.OperatorPersona): after the machine's cycle has had its chance,
    a person settles by hand what is still interrupted, as an operator on duty would."""
    threshold = wallet.currency.polling_threshold
    before = None
    for rounds in range(1, max_rounds + 1):
        wait_sends_over(wallet)
        run_cycle(wallet)
        if person is not None and person.settle(wallet):
            run_cycle(wallet)  # what "never left" put back in the queue goes out
        mine(ours, outside, threshold)
        run_cycle(wallet)
        after = _signature(wallet, ours)
        if (after == before or _nothing_left(wallet)) and not after[-1]:
            return rounds
        before = after
    return max_rounds


def _nothing_left(wallet: Wallet) -> bool:
    """No transaction polled, no outgoing waiting or in a broadcast, no fee unknown."""
    from broadcasts.models import Broadcast, OutgoingTransaction
    from ledger.models import POLLED_STATES

    return not (
        NT.objects.filter(wallet=wallet, state__in=POLLED_STATES).exists()
        or OutgoingTransaction.objects.filter(wallet=wallet)
        .exclude(state=OutgoingTransaction.State.BROADCASTED)
        .exists()
        or Broadcast.objects.filter(
            wallet=wallet, state__in=[Broadcast.State.COLLECTED, Broadcast.State.OPENED]
        ).exists()
        or Broadcast.objects.filter(wallet=wallet, fee__isnull=True, txid__gt="").exists()
    )
