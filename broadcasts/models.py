"""Outgoing transactions and the broadcasts that carry them to the network.

An outgoing transaction is queued by `withdrawals.send_external` (201 -> 204 in the books) and
sent as part of one broadcast: one transaction per wallet, signed and recorded before it is
sent where the backend signs (bitcoind), a single `sendmany`-style call elsewhere (block.io).
Amounts are int base units.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class BroadcastState(models.TextChoices):
    COLLECTED = "collected", "collected (not sent yet)"
    OPENED = "opened", "opened (sending, or interrupted)"
    BROADCASTED = "broadcasted", "broadcasted"
    FAILED = "failed", "failed (nothing sent)"
    CLOSED_BROADCASTED = "closed_broadcasted", "closed by hand: reached the network"
    CLOSED_FAILED = "closed_failed", "closed by hand: never left"


# States in which a broadcast still owns its outgoing transactions: the one-active-broadcast
# constraint reads this. Module level because Broadcast.Meta cannot see Broadcast's attributes.
ACTIVE_STATES = (BroadcastState.COLLECTED, BroadcastState.OPENED)


class Broadcast(models.Model):
    State = BroadcastState
    ACTIVE_STATES = ACTIVE_STATES

    class CloseMethod(models.TextChoices):
        REACHED_NETWORK = "reached_network", "It reached the network"
        NEVER_LEFT = "never_left", "It never left"
        SAME_NONCE = "same_nonce", "Retried with the same nonce"

    wallet = models.ForeignKey("ledger.Wallet", on_delete=models.PROTECT, related_name="broadcasts")
    state = models.CharField(
        max_length=24, choices=State.choices, default=State.COLLECTED, db_index=True
    )
    # The sendmany comment: how an interrupted broadcast is found in the node's wallet.
    label = models.CharField(max_length=128, unique=True, null=True, blank=True)
    # Snapshot of what is (to be) sent: {address: base units}. JSON ints, never floats.
    outputs = models.JSONField(default=dict)
    output_count = models.PositiveIntegerField(default=0)
    transaction_count = models.PositiveIntegerField(default=0)
    total = models.BigIntegerField(default=0, help_text="Base units")
    txid = models.CharField(max_length=64, blank=True)
    # Sign first, send after (backends that sign here: bitcoind). Set in the opening UPDATE;
    # the signed transaction, its txid, fee and coins are committed before any byte goes to
    # the node's network, so the machine settles a lost send itself by re-sending the same
    # bytes (they can only ever pay once). False: a sendmany-style send (block.io, old rows).
    signed_first = models.BooleanField(default=False)
    raw_tx = models.TextField(blank=True, help_text="The signed transaction, hex")
    signed_fee = models.BigIntegerField(
        null=True, blank=True, help_text="Base units the signed transaction pays as fee"
    )
    # The coins it spends, "txid:vout": locked on the node until it is settled.
    inputs = models.JSONField(default=list, blank=True)
    # Why the machine cannot settle a signed broadcast (its inputs spent by another
    # transaction): it is then interrupted, for a person. Empty: the machine settles it.
    stuck_reason = models.TextField(blank=True)
    # A signed broadcast that can never confirm, with the proof: one of its coins spent by
    # another transaction at least the currency's polling threshold deep. Only then may its
    # withdrawals be paid by a transaction that does not spend one of its coins (attempts.py).
    dead_reason = models.TextField(blank=True)
    # When a sent broadcast lost (its coins spent by another confirmed transaction) and its
    # booking was reversed: once, by a conditional UPDATE on this being empty.
    reversed_at = models.DateTimeField(null=True, blank=True)
    # When a later run took over a signed broadcast whose own run died or lost the node's
    # answer (recover_signed): with closed_by empty, it settled itself, no person needed.
    recovered_at = models.DateTimeField(null=True, blank=True)
    # The send's lease: while it is in the future the send is in flight (a broadcaster holds it,
    # or may still be waiting for the node's reply) and nobody may settle the broadcast. Set in
    # the conditional UPDATE that opens it; the node call's deadline is below it. Interrupted =
    # opened and the lease is over (or absent: rows made before leases, or by hand), on any
    # database.
    sending_until = models.DateTimeField(null=True, blank=True)
    # block.io's `nonce`: a repeated withdraw with it is refused within block.io's window, so
    # re-issuing it settles a lost reply safely. Committed before the call.
    nonce = models.CharField(max_length=64, blank=True)
    # Something a person must look at although the broadcast is closed (a late reply after a
    # close by hand): shown in red on every admin page until acknowledged.
    needs_attention = models.BooleanField(default=False)
    fee = models.BigIntegerField(
        null=True, blank=True, help_text="Base units; empty until looked up"
    )
    network_transaction = models.ForeignKey(
        "ledger.NetworkTransaction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="broadcasts",
    )
    created_at = models.DateTimeField(default=timezone.now)
    opened_at = models.DateTimeField(null=True, blank=True)
    broadcasted_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    close_method = models.CharField(max_length=24, choices=CloseMethod.choices, blank=True)
    close_reason = models.TextField(blank=True)
    # When the node's answer to a send arrived after the broadcast was settled or closed by
    # hand (a late reply): the watch for such answers never reports one twice.
    late_reply_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # At most one broadcast per wallet may hold outgoing transactions at a time: the
            # database, not the code, stops a second attempt from being collected or opened.
            models.UniqueConstraint(
                fields=["wallet"],
                condition=Q(state__in=list(ACTIVE_STATES)),
                name="broadcast_one_active_per_wallet",
            ),
            models.UniqueConstraint(
                fields=["txid"], condition=~Q(txid=""), name="broadcast_txid_unique"
            ),
            models.CheckConstraint(condition=Q(total__gte=0), name="broadcast_total_not_negative"),
            models.CheckConstraint(
                condition=Q(fee__isnull=True) | Q(fee__gte=0), name="broadcast_fee_not_negative"
            ),
            models.CheckConstraint(
                condition=~Q(
                    state__in=["opened", "broadcasted", "closed_broadcasted", "closed_failed"]
                )
                | Q(opened_at__isnull=False),
                name="broadcast_opened_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(state__in=["broadcasted", "closed_broadcasted"]) | ~Q(txid=""),
                name="broadcast_sent_has_txid",
            ),
            models.CheckConstraint(
                condition=~Q(state__in=["closed_broadcasted", "closed_failed"])
                | (Q(closed_by__isnull=False) & ~Q(close_method="") & ~Q(close_reason="")),
                name="broadcast_closed_by_hand_says_who_how_why",
            ),
        ]
        permissions = [("close_broadcast_by_hand", "Can close interrupted broadcasts by hand")]

    def __str__(self):
        return self.label or f"broadcast #{self.pk}"

    def fee_share(self, amount: int, *, signed=False) -> int | None:
        """One withdrawal's part of the fee, pro rata of the amounts sent and rounded down, so
        the shares never add up to more than the fee. `signed`: the signed fee counts before
        the booked one is known (sign first knows it before booking)."""
        fee = self.fee if self.fee is not None else (self.signed_fee if signed else None)
        if fee is None or not self.total:
            return None
        return fee * amount // self.total

    @staticmethod
    def lease_over(now):
        """The rows whose send's lease is over (or that never had one)."""
        return Q(sending_until__isnull=True) | Q(sending_until__lte=now)

    @property
    def in_flight(self):
        return (
            self.state == self.State.OPENED
            and self.sending_until is not None
            and self.sending_until > timezone.now()
        )


class OutgoingTransaction(models.Model):
    class State(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", "awaiting approval"
        # Ready for the broadcaster: not needing approval, or approved (approved_by says which).
        QUEUED = "queued", "queued"
        BROADCASTING = "broadcasting", "in a broadcast"
        BROADCASTED = "broadcasted", "sent"
        # The exits without a send: the amount went back 204 -> 201 in the same transaction.
        REJECTED = "rejected", "rejected (returned)"
        CANCELLED = "cancelled", "cancelled (returned)"
        # Refused by the node too often: out of the queue, the amount still on 204 until a
        # person cancels it (returned) or fixes the cause.
        NEEDS_ATTENTION = "needs_attention", "needs attention"

    # States from which a person may still stop it (nothing is being sent).
    STOPPABLE_STATES = (State.AWAITING_APPROVAL, State.QUEUED, State.NEEDS_ATTENTION)
    RETURNED_STATES = (State.REJECTED, State.CANCELLED)
    # The node's provable refusals of this output alone after which it leaves the queue.
    MAX_REFUSALS = 3

    wallet = models.ForeignKey(
        "ledger.Wallet", on_delete=models.PROTECT, related_name="outgoing_transactions"
    )
    currency = models.ForeignKey("ledger.Currency", on_delete=models.PROTECT, related_name="+")
    # The user's 201 (paid from) and 204 (where the amount waits until broadcast).
    account = models.ForeignKey(
        "ledger.Account", on_delete=models.PROTECT, related_name="outgoing_transactions"
    )
    hold_account = models.ForeignKey("ledger.Account", on_delete=models.PROTECT, related_name="+")
    address = models.CharField(max_length=128)
    amount = models.BigIntegerField(help_text="Base units")
    state = models.CharField(max_length=24, choices=State.choices, default=State.QUEUED)
    broadcast = models.ForeignKey(
        Broadcast,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="outgoing_transactions",
    )
    # The last broadcast that gave it back to the queue: if that broadcast's send turns out to
    # have paid after all (a late reply), the outgoing still waiting are taken back from here.
    returned_by = models.ForeignKey(
        Broadcast, null=True, blank=True, on_delete=models.PROTECT, related_name="returned_outgoing"
    )
    lock_entry = models.OneToOneField(
        "ledger.Transaction",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The ledger entry that moved the amount from the user's balance to withdraw "
        "locked",
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Broadcasts that failed to send it")
    refusals = models.PositiveIntegerField(
        default=0, help_text="Times the node refused a send of this output alone"
    )
    last_error = models.TextField(blank=True, help_text="The node's last refusal of this output")
    # Why it waits for approval (the rule it crossed, with the figures), empty if it did not.
    approval_reason = models.CharField(max_length=255, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    # Rejected or cancelled: who, when, why, and the 204 -> 201 entry that gave the money back.
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.TextField(blank=True)
    return_entry = models.OneToOneField(
        "ledger.Transaction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The ledger entry that gave the amount back to the user's balance",
    )
    label = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="outgoing_amount_positive"),
            models.CheckConstraint(
                condition=Q(state__in=["broadcasting", "broadcasted"], broadcast__isnull=False)
                | Q(~Q(state__in=["broadcasting", "broadcasted"]), broadcast__isnull=True),
                name="outgoing_in_a_broadcast_iff_broadcast",
            ),
            # Money given back exactly when it left without being sent, with who and why.
            models.CheckConstraint(
                condition=Q(
                    state__in=["rejected", "cancelled"],
                    return_entry__isnull=False,
                    closed_at__isnull=False,
                )
                & ~Q(close_reason="")
                | Q(~Q(state__in=["rejected", "cancelled"]), return_entry__isnull=True),
                name="outgoing_returned_iff_rejected_or_cancelled",
            ),
        ]
        indexes = [
            # The broadcaster's working set: one wallet's queue.
            models.Index(fields=["wallet", "state"], name="outgoing_wallet_state_idx"),
        ]
        permissions = [
            ("queue_outgoingtransaction", "Can queue outgoing transactions from the admin"),
            (
                "approve_outgoingtransaction",
                "Can approve outgoing transactions queued by someone else",
            ),
            (
                "cancel_outgoingtransaction",
                "Can reject or cancel outgoing transactions (the amount is returned)",
            ),
        ]

    def __str__(self):
        return f"{self.currency.amount(self.amount)} to {self.address}"

    @property
    def amount_display(self):
        return f"{self.currency.amount(self.amount)}"


class BroadcastMember(models.Model):
    """A withdrawal that was part of a broadcast, kept for good (the withdrawal's `broadcast`
    is only the current one): every signed transaction that ever contained a withdrawal is
    found from here, so it is paid again only by one conflicting with all of them."""

    broadcast = models.ForeignKey(Broadcast, on_delete=models.PROTECT, related_name="members")
    outgoing = models.ForeignKey(
        OutgoingTransaction, on_delete=models.PROTECT, related_name="memberships"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["broadcast", "outgoing"], name="broadcast_member_once")
        ]

    def __str__(self):
        return f"outgoing #{self.outgoing_id} in broadcast #{self.broadcast_id}"


class WithdrawalRule(models.Model):
    """A currency's withdrawal rules, edited in the admin and audited (cryptoadmin/audit.py).

    Kept here rather than on ledger.Currency: they are rules of queueing withdrawals, read
    only by broadcasts/withdrawals.py and signed.py, and a currency without a row has no limits."""

    currency = models.OneToOneField(
        "ledger.Currency", on_delete=models.PROTECT, related_name="withdrawal_rule"
    )
    minimum_amount = models.BigIntegerField(
        "minimum amount (base units)",
        default=0,
        help_text="Base units; smaller withdrawals are refused when queued (the node's dust limit, "
        "block.io's minimum)",
    )
    approval_above = models.BigIntegerField(
        "approval above (base units)",
        null=True,
        blank=True,
        help_text="Base units; a larger withdrawal waits for a second person's approval. "
        "Empty: none waits for its amount",
    )
    daily_limit = models.BigIntegerField(
        "daily limit (base units)",
        null=True,
        blank=True,
        help_text="Base units; once a user's withdrawals of the last 24 hours (this one "
        "included) exceed it, the withdrawal waits for approval. Empty: no limit",
    )
    # The fee policy of a broadcast (bitcoind, which builds and signs it here).
    fee_rate = models.BigIntegerField(
        "fee rate (base units per 1000 bytes)",
        null=True,
        blank=True,
        help_text="Base units per 1000 bytes paid as fee. Empty: the confirmation target, "
        "or the node's own choice",
    )
    confirmation_target = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Blocks; the node estimates the fee rate for it (nodes that support it). "
        "Used when no fee rate is set",
    )
    max_fee = models.BigIntegerField(
        "max fee (base units)",
        null=True,
        blank=True,
        help_text="Base units; a broadcast whose fee would be higher is not sent and its "
        "outgoing transactions need attention. Empty: no cap",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(minimum_amount__gte=0), name="withdrawal_rule_minimum_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(approval_above__isnull=True) | Q(approval_above__gte=0),
                name="withdrawal_rule_approval_above_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(daily_limit__isnull=True) | Q(daily_limit__gte=0),
                name="withdrawal_rule_daily_limit_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(fee_rate__isnull=True) | Q(fee_rate__gt=0),
                name="withdrawal_rule_fee_rate_positive",
            ),
            models.CheckConstraint(
                condition=Q(max_fee__isnull=True) | Q(max_fee__gte=0),
                name="withdrawal_rule_max_fee_not_negative",
            ),
        ]

    def __str__(self):
        return f"{self.currency.code} withdrawal rules"
