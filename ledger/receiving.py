"""A receiving address given to a user by a person in the admin (the product asks through the
API): on a fresh install, the first deposit needs no shell."""

from __future__ import annotations

from cryptoadmin.errors import CryptoadminError

from . import actors, services
from .backends import BackendError
from .models import Address, Wallet

ADDRESS_PERM = "ledger.add_address"


class AddressRefused(CryptoadminError, ValueError):
    def __init__(self, message, *, code):
        super().__init__(message)
        self.code = code


def give_address(wallet: Wallet, user_id: str, *, by) -> Address:
    """A fresh address from the wallet's node on the user's balance account."""
    actors.require(by, ADDRESS_PERM)
    if not Wallet.objects.active().filter(pk=wallet.pk).exists():
        raise AddressRefused(f"{wallet.name} is disabled.", code="wallet_disabled")
    try:
        address = services.new_receiving_address(wallet, user_id)
    except BackendError as exc:
        raise AddressRefused(
            f"The node did not give an address ({type(exc).__name__}).", code="node_unreachable"
        ) from exc
    actors.log_action(by, address, f"Given to user {user_id}", added=True)
    return address
