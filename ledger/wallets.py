"""A wallet's life in the admin: its node settings checked and tried before they are saved,
and its retirement (disabled for good, its name freed) once the books say it holds nothing."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from cryptoadmin.errors import CryptoadminError

from . import actors, services
from .backends import BackendError, NodeUnreachable
from .models import NetworkTransaction, Wallet

RETIRE_PERM = "ledger.change_wallet"
TEST_TIMEOUT = 5  # seconds per node call when a person tries a connection


class RetireRefused(CryptoadminError, ValueError):
    def __init__(self, message, *, code):
        super().__init__(message)
        self.code = code


def try_connection(wallet: Wallet) -> tuple[bool, str, str]:
    """(ok, code, message) of asking the wallet's node its block height; writes nothing."""
    try:
        height = wallet.get_backend(timeout=TEST_TIMEOUT).block_height()
    except BackendError as exc:
        return False, _code(exc), f"{type(exc).__name__}: {exc}"
    return True, "connected", f"Connected: the node is at block height {height}."


def _code(exc) -> str:
    # "NodeUnreachable" -> "node_unreachable": outcomes as codes, not message text. A refused
    # connection is "not sent" to a sender; to a person trying settings, the node is unreachable.
    name = "NodeUnreachable" if isinstance(exc, NodeUnreachable) else type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def retire(wallet: Wallet, *, by) -> Wallet:
    """Disable the wallet for good and free its name. Refused while the books say it holds
    coins (users' money, queued withdrawals) or a network transaction of it is still polled."""
    actors.require(by, RETIRE_PERM)
    with transaction.atomic():
        row = Wallet.objects.select_for_update().get(pk=wallet.pk)
        if row.retired_at is not None:
            raise RetireRefused(f"{row.name} is retired already.", code="already_retired")
        held = services.wallet_books_balance(row)
        if held:
            raise RetireRefused(
                f"{row.name} holds {row.currency.amount(held)} in the books: move or withdraw "
                "it first.",
                code="wallet_not_empty",
            )
        if NetworkTransaction.objects.polled().filter(wallet=row).exists():
            raise RetireRefused(
                f"{row.name} has network transactions still followed.", code="wallet_busy"
            )
        old_name = row.name
        row.name = f"{row.name} (retired #{row.pk})"[:64]
        row.enabled, row.retired_at = False, timezone.now()
        # A save of the locked row (not a queryset update): the audit log sees the change.
        row.save(update_fields=["name", "enabled", "retired_at"])
        actors.log_action(by, row, f"Retired (was {old_name})")
    return row
