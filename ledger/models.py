"""The books: currencies, wallets, accounts, addresses, double-entry transactions and
network transactions. Amounts are integer base units (see ledger/money.py)."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Case, Count, F, Q, Sum, When
from django.utils import timezone

from .money import MAX_DECIMALS, format_amount, format_units
from .txids import TXID_PATTERN, TXID_RE  # noqa: F401  walletnotify imports TXID_RE from here


class Currency(models.Model):
    code = models.CharField(max_length=16, unique=True, help_text="Ticker, e.g. BTC")
    name = models.CharField(max_length=64, blank=True)
    decimals = models.PositiveSmallIntegerField(default=8)
    enabled = models.BooleanField(default=True)
    crediting_threshold = models.PositiveIntegerField(
        default=3, help_text="Confirmations at which a deposit is credited to the user"
    )
    polling_threshold = models.PositiveIntegerField(
        default=6,
        help_text="Confirmations at which a network transaction is closed and no longer polled",
    )
    network = models.CharField(
        max_length=16,
        default="regtest",
        help_text="mainnet, testnet or regtest: used to validate addresses",
    )

    class Meta:
        verbose_name_plural = "currencies"
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(decimals__lte=MAX_DECIMALS), name="currency_decimals_fit_int64"
            ),
            models.CheckConstraint(
                condition=Q(polling_threshold__gte=models.F("crediting_threshold")),
                name="currency_polling_after_crediting",
            ),
            models.CheckConstraint(
                condition=Q(crediting_threshold__gte=1), name="currency_crediting_at_least_1"
            ),
        ]

    def __str__(self):
        return self.code

    def format(self, units: int) -> str:
        return format_units(units, self.decimals)

    def amount(self, units: int) -> str:
        """'1.50000000 BTC': see money.format_amount."""
        return format_amount(units, self)


class WalletQuerySet(models.QuerySet):
    def active(self):
        """The wallets the project works with: the wallet AND its currency enabled. Polling,
        broadcasting, rescans, health, the overview and the queue form all read this one rule."""
        return self.filter(enabled=True, currency__enabled=True)


class Wallet(models.Model):
    class Backend(models.TextChoices):
        BITCOIND = "bitcoind", "bitcoind (JSON-RPC)"
        BLOCKIO = "blockio", "block.io (HTTP API)"

    name = models.CharField(max_length=64, unique=True)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="wallets")
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.BITCOIND)
    # bitcoind: {"url": "http://user:pass@127.0.0.1:8332"};
    # block.io: {"api_key", "pin", "base_url"}.
    # Secrets: never shown in the admin or logs (see backend_settings_masked).
    backend_settings = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    # Retired: disabled for good and renamed, so its name can be given to a new wallet; its
    # accounts, addresses and history stay (ledger/wallets.py).
    retired_at = models.DateTimeField(null=True, blank=True)
    last_block_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text="The node's tip at the poller's last cycle (its listsinceblock cursor)",
    )
    # The height of that tip: a mined row's confirmations are this - its block_height + 1.
    last_block_height = models.IntegerField(null=True, blank=True)
    # The wallet's newest transaction (the newest listtransactions entry) read with that tip:
    # another one under an unchanged tip means a new wallet transaction (an unconfirmed deposit)
    # the poller reads at once instead of waiting for it to be mined.
    last_tx_marker = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    last_reconciliation = models.JSONField(default=dict, blank=True)
    # A full reconciliation queued by "Reconcile now" and not finished: set by a conditional
    # UPDATE (one scan at a time per wallet), cleared by the UPDATE recording the result or
    # the failure. Older than the task queue's timeout: the worker died, a new request may
    # queue it again (ledger/reconcile.py).
    reconcile_requested_at = models.DateTimeField(null=True, blank=True)
    reconcile_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The last queued reconciliation that failed (node unreachable, ...), until one succeeds.
    last_reconcile_error = models.TextField(blank=True)
    last_reconcile_error_at = models.DateTimeField(null=True, blank=True)
    last_rescan_at = models.DateTimeField(null=True, blank=True)
    last_rescan_result = models.JSONField(default=dict, blank=True)
    # The poller's last cycle of this wallet: a failing wallet is recorded here and the
    # others are polled as usual (ledger/confirmations/).
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_poll_error = models.TextField(blank=True)
    last_poll_error_at = models.DateTimeField(null=True, blank=True)

    objects = WalletQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [
            ("import_wallet_balance", "Can import a wallet's unaccounted balance"),
            ("rescan_wallet", "Can rescan a wallet's receiving addresses"),
            (
                "reconcile_wallet",
                "Can record a reconciliation of a wallet's node against the books",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.currency.code}, {self.backend})"

    def backend_settings_masked(self) -> dict:
        from cryptoadmin.masking import mask_value

        settings = self.backend_settings
        return mask_value(settings) if isinstance(settings, dict) else {"settings": "••••••"}

    def clean(self):
        # A node URL off the deployment's NODE_HOSTS is refused when the wallet is saved (and
        # again by the backend before every request).
        from django.core.exceptions import ValidationError

        from .backends import BackendError, HostRefused

        if not isinstance(self.backend_settings, dict):
            # Not tied to a field: the wallet form shows the node's settings as fields of its own.
            raise ValidationError(
                'backend settings must be a JSON object, e.g. {"url": "http://user:pw@host:8332"}',
                code="invalid",
            )
        if self.currency_id is None:
            return  # the form reports the missing currency
        try:
            self.get_backend()
        except HostRefused as exc:
            raise ValidationError(str(exc), code=exc.code) from None
        except BackendError:
            pass  # settings missing: the first node call says so, as before

    def get_backend(self, timeout=None):
        from .backends import backend_for

        return backend_for(self, timeout)

    @property
    def backend_class(self) -> type:
        """The class of this wallet's backend: its capabilities, without a node call."""
        from .backends import backend_class

        return backend_class(self.backend)


# The one list of each kind of account code: the Account constraint, the balance cache's query
# (balances/cache.py) and the services (ledger/services.py) all read these. Module level because
# the constraint in Account.Meta cannot see Account's class attributes.
USER_CODES = (201, 202, 203, 204, 205, 206, 230)
SYSTEM_CODES = (900, 910, 920)


class Account(models.Model):
    """A user's account (codes 201..206, 230) per currency, or a wallet's system account."""

    # Labels are what people read: a user account's name is its balances query field in words
    # (balances/table.py derives them and its tests hold these to it), never the code.
    class Code(models.IntegerChoices):
        BALANCE = 201, "balance"
        ADVANCED_TRADING = 202, "advanced trading"
        LOCKED = 203, "locked"
        WITHDRAW_LOCKED = 204, "withdraw locked"
        STAKING_LOCKED = 205, "staking locked"
        ACTIVE_STAKING = 206, "active staking"
        ADVANCED_TRADING_LOCKED = 230, "advanced trading locked"
        # System accounts, one each per wallet: the outside world seen from the books.
        NETWORK = 900, "network"
        IMPORT = 910, "import"
        FEES = 920, "network fees"

    USER_CODES = USER_CODES
    SYSTEM_CODES = SYSTEM_CODES

    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="accounts")
    code = models.PositiveIntegerField(choices=Code.choices)
    # NULL, not "", marks a system account: the constraints below test user_id IS NULL, and ""
    # could be taken for a user's id.
    user_id = models.CharField(  # noqa: DJ001
        max_length=128, null=True, blank=True, db_index=True, help_text="External user id"
    )
    wallet = models.ForeignKey(
        Wallet, null=True, blank=True, on_delete=models.PROTECT, related_name="system_accounts"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "currency", "code"],
                condition=Q(user_id__isnull=False),
                name="account_one_per_user_currency_code",
            ),
            models.UniqueConstraint(
                fields=["wallet", "code"],
                condition=Q(wallet__isnull=False),
                name="account_one_per_wallet_code",
            ),
            # Exactly one owner: a user (user codes) or a wallet (system codes).
            models.CheckConstraint(
                condition=(
                    Q(user_id__isnull=False, wallet__isnull=True, code__in=list(USER_CODES))
                    | Q(user_id__isnull=True, wallet__isnull=False, code__in=list(SYSTEM_CODES))
                ),
                name="account_owner_matches_code",
            ),
        ]

    def __str__(self):
        owner = self.user_id if self.user_id is not None else f"wallet {self.wallet.name}"
        return f"{self.get_code_display()} of {owner} ({self.currency.code})"


class Address(models.Model):
    class Kind(models.TextChoices):
        RECEIVING = "receiving", "receiving (ours)"
        EXTERNAL = "external", "external destination"

    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="addresses")
    wallet = models.ForeignKey(
        Wallet, null=True, blank=True, on_delete=models.PROTECT, related_name="addresses"
    )
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="addresses"
    )
    address = models.CharField(max_length=128)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    label = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "addresses"
        constraints = [
            models.UniqueConstraint(
                fields=["currency", "address"], name="address_unique_per_currency"
            ),
            models.CheckConstraint(
                condition=Q(kind="external") | Q(account__isnull=False, wallet__isnull=False),
                name="address_receiving_has_owner",
            ),
        ]
        # The operator's exact address search, whatever the currency.
        indexes = [models.Index(fields=["address"], name="address_address_idx")]

    def __str__(self):
        return self.address


class NetworkTransactionQuerySet(models.QuerySet):
    # How long an open row may wait before operators see it as stuck (dashboard, admin filter).
    STUCK_AFTER = timedelta(hours=1)

    def polled(self):
        """Rows the poller still asks about: open ones, and troubled ones that may come back."""
        return self.filter(state__in=POLLED_STATES)

    def awaiting_credit(self):
        """Deposits in the node's balance that the books have not credited yet: open, no
        credit. Conflicted and vanished ones are polled too but out of the node's balance (and
        of listreceivedbyaddress), so counting them would show a difference that is not there.
        The quick reconciliation sums their `amount` (a row recorded before the amount was kept
        has none: counted, never guessed)."""
        return self.filter(
            type=NetworkTransaction.Type.DEPOSIT,
            state=NetworkTransaction.State.OPEN,
            credited_at__isnull=True,
        )

    def awaiting_credit_per_wallet(self) -> dict[int, tuple[int, int]]:
        """{wallet id: (sum of the known amounts, rows of unknown amount)} of awaiting_credit(),
        in one grouped query over the open rows only (never the closed history)."""
        rows = (
            self.awaiting_credit()
            .values("wallet_id")
            .annotate(total=Sum("amount"), unknown=Count("id", filter=Q(amount__isnull=True)))
            .order_by()
        )
        return {r["wallet_id"]: (r["total"] or 0, r["unknown"]) for r in rows}

    def stuck(self, now=None):
        """Open for longer than STUCK_AFTER: a deposit or broadcast an operator should look at."""
        return self.filter(self.stuck_q(now))

    @classmethod
    def stuck_q(cls, now=None) -> Q:
        """The rule of stuck() as a condition, for counting (`Count(..., filter=...)`)."""
        return Q(
            state=NetworkTransaction.State.OPEN,
            opened_at__lt=(now or timezone.now()) - cls.STUCK_AFTER,
        )

    def with_confirmations(self):
        """`confirmations_now`: a mined open row's confirmations derived from its wallet's tip
        (the poller does not rewrite every row per block); otherwise the stored value."""
        derived = F("wallet__last_block_height") - F("block_height") + 1
        return self.annotate(
            confirmations_now=Case(
                When(
                    state=NetworkTransaction.State.OPEN,
                    block_height__isnull=False,
                    wallet__last_block_height__isnull=False,
                    then=derived,
                ),
                default=F("confirmations"),
                output_field=models.IntegerField(),
            )
        )


class NetworkTransaction(models.Model):
    """A transaction on the chain that concerns us: a deposit to our addresses or our broadcast.

    Open (polled) until its confirmations reach the currency's polling threshold.

    The rule for deposits (ledger/confirmations/ applies it, the CHECK below backs it): a
    deposit row leaves the polled states (open, conflicted, vanished) only in the database
    transaction that credits it, or when an operator closes it by hand, and then nothing
    credits it. One row per wallet: a transaction paying two of our wallets is a deposit of each.
    """

    class Type(models.TextChoices):
        DEPOSIT = "deposit", "deposit"
        BROADCAST = "broadcast", "broadcast"

    class State(models.TextChoices):
        OPEN = "open", "open"
        CLOSED = "closed", "closed (confirmed)"
        CONFLICTED = "conflicted", "conflicted"
        VANISHED = "vanished", "vanished from node"
        CLOSED_BY_HAND = "closed_by_hand", "closed by hand"

    currency = models.ForeignKey(
        Currency, on_delete=models.PROTECT, related_name="network_transactions"
    )
    wallet = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, related_name="network_transactions"
    )
    txid = models.CharField(max_length=64)
    type = models.CharField(max_length=16, choices=Type.choices)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.OPEN, db_index=True
    )
    confirmations = models.IntegerField(default=0)
    max_confirmations = models.IntegerField(
        default=0, help_text="Highest ever seen: a drop means a reorg"
    )
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    credited_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    flagged = models.BooleanField(
        default=False, help_text="Needs an operator: e.g. a credited deposit lost confirmations"
    )
    flag_reason = models.TextField(blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    close_reason = models.TextField(blank=True)
    # What the operator's list shows before anything is credited: a deposit's total to our
    # receiving addresses as the node first reported it, a broadcast's total sent. Display
    # only: crediting reads the node's outputs again, never this.
    amount = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Base units paid to our addresses (deposit) or sent (broadcast); empty on "
        "rows recorded before it was kept",
    )
    # Where it was mined, as last seen on the node: confirmations follow from the wallet's tip,
    # and a reorg shows as this hash no longer at this height. Empty / NULL: not mined (or not
    # known yet): asked about by txid.
    block_hash = models.CharField(max_length=64, blank=True)
    block_height = models.IntegerField(null=True, blank=True)
    # Display only, like `amount`: the first of our receiving addresses a deposit pays, as the
    # node first reported it, so a person sees whom it pays before it is credited (the credits
    # name every address paid).
    paid_address = models.ForeignKey(
        "Address", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = NetworkTransactionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["wallet", "txid", "type"], name="network_tx_unique_per_wallet_txid_type"
            ),
            # Our own broadcast is one row whatever wallet looks it up (broadcasts/settlement.py
            # finds it by currency and txid).
            models.UniqueConstraint(
                fields=["currency", "txid"],
                condition=Q(type="broadcast"),
                name="network_tx_one_broadcast_per_currency_txid",
            ),
            # "Closed (confirmed)" is reached only by crediting: a deposit closed without its
            # credit would never be polled or credited again (issue 12).
            models.CheckConstraint(
                condition=~Q(type="deposit", state="closed", credited_at__isnull=True),
                name="network_tx_deposit_closed_only_credited",
            ),
            models.CheckConstraint(
                condition=Q(txid__regex=TXID_PATTERN), name="network_tx_txid_is_hex64"
            ),
        ]
        indexes = [
            # The poller's working set: open rows of one currency.
            models.Index(fields=["currency", "state", "opened_at"], name="network_tx_open_idx"),
            # A poll cycle's range scans: rows reaching a threshold, rows in a block to check.
            models.Index(
                fields=["wallet", "state", "block_height", "block_hash"],
                name="network_tx_block_idx",
            ),
            # Deposits still due a credit (few), found without reading every open row.
            models.Index(
                fields=["wallet", "block_height"],
                name="network_tx_uncredited_idx",
                condition=Q(type="deposit", state="open", credited_at__isnull=True),
            ),
            # Operator pages at any size: the exact txid search, the list's default order
            # (newest first, id breaking ties as the admin adds it) and the flagged few.
            models.Index(fields=["txid"], name="network_tx_txid_idx"),
            models.Index(fields=["opened_at", "id"], name="network_tx_opened_idx"),
            models.Index(fields=["id"], name="network_tx_flagged_idx", condition=Q(flagged=True)),
            # The open rows, newest first, without sorting every open row of every currency.
            models.Index(
                fields=["opened_at", "id"],
                name="network_tx_open_list_idx",
                condition=Q(state="open"),
            ),
        ]
        permissions = [
            ("close_networktransaction_by_hand", "Can close network transactions by hand"),
            ("check_networktransaction", "Can check network transactions against the node now"),
        ]

    def __str__(self):
        return f"{self.type} {self.txid[:12]}…"

    @property
    def is_open(self):
        return self.state == self.State.OPEN

    @property
    def confirmations_now(self):
        """The derived value (see NetworkTransactionQuerySet.with_confirmations) when annotated,
        else computed from the wallet's tip (one more query unless the wallet is loaded)."""
        if "confirmations_now" in self.__dict__:
            return self.__dict__["confirmations_now"]
        if self.state == self.State.OPEN and self.block_height is not None:
            tip = self.wallet.last_block_height
            if tip is not None:
                return tip - self.block_height + 1
        return self.confirmations

    @confirmations_now.setter
    def confirmations_now(self, value):
        self.__dict__["confirmations_now"] = value


# Rows that are still polled: open ones, and troubled ones that may come back.
POLLED_STATES = (
    NetworkTransaction.State.OPEN,
    NetworkTransaction.State.CONFLICTED,
    NetworkTransaction.State.VANISHED,
)


class Transaction(models.Model):
    """One double-entry ledger row: `amount` moves from `source` to `destination`.

    Append-only: corrections are new rows. The database refuses amount <= 0, a row whose
    accounts are of different currencies, and edits of the money columns.
    """

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "deposit"
        INTERNAL = "internal", "internal"
        PENDING_OUTGOING = "pending_outgoing", "pending outgoing (withdraw lock)"
        BROADCASTED = "broadcasted", "broadcasted (left the wallet)"
        RETURNED = "returned", "returned (failed outgoing)"
        FEE = "fee", "network fee"
        IMPORT = "import", "import"
        # A sent transaction that lost to another one: its booking undone (900 -> 204, fee).
        REVERSED = "reversed", "reversed (a sent transaction lost)"

    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="transactions")
    source = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="debits")
    destination = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="credits")
    amount = models.BigIntegerField(help_text="Base units (satoshis)")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    network_transaction = models.ForeignKey(
        NetworkTransaction,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
    )
    # For a deposit: which of our addresses was paid. One credit per (network tx, address).
    address = models.ForeignKey(
        Address, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    label = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transaction_amount_positive"),
            models.CheckConstraint(
                condition=~Q(source=models.F("destination")), name="transaction_distinct_accounts"
            ),
            # Exactly-once crediting of deposits, enforced by the database.
            models.UniqueConstraint(
                fields=["network_transaction", "address"],
                condition=Q(kind="deposit"),
                name="transaction_one_credit_per_deposit_output",
            ),
        ]
        indexes = [
            models.Index(fields=["source", "amount"], name="transaction_source_amount_idx"),
            models.Index(fields=["destination", "amount"], name="transaction_dest_amount_idx"),
            # Reconciliation's credited sum per reported address, read from the index alone
            # (the deposits of an address are scattered over the whole table).
            models.Index(
                fields=["address", "amount"],
                name="transaction_deposit_addr_idx",
                condition=Q(kind="deposit"),
            ),
        ]

    def __str__(self):
        amount = self.currency.amount(self.amount)
        return f"{self.get_kind_display()} {amount}: {self.source} to {self.destination}"


class AccountBalance(models.Model):
    """An account's running total: credits minus debits of all its ledger rows, in base units.

    Written only by the database (the trigger of migration 0009, in the same transaction as
    each ledger row it counts), never by code, so every writer of ledger rows keeps it exact
    and two posts racing on one account add up (each is an atomic `balance = balance + x`).
    `currency` and `code` copy the account's, which never change once it has entries (0007):
    sums over one kind of account (all users' 204) read an index, not the accounts table.
    A row exists once the account has an entry; no row means zero.
    `manage.py check_balances` recomputes every total from the ledger rows.
    """

    account = models.OneToOneField(
        Account, primary_key=True, on_delete=models.PROTECT, related_name="running_total"
    )
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    code = models.PositiveIntegerField()
    balance = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            # Sums per currency and code (pending outgoing = all users' 204) over the few
            # accounts that hold something, whatever the number of users.
            models.Index(
                fields=["currency", "code", "balance"],
                name="account_balance_nonzero_idx",
                condition=~Q(balance=0),
            ),
        ]

    def __str__(self):
        return f"account {self.account_id}: {self.balance}"
