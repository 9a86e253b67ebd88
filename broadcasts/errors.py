"""The broadcasts app's refusals: each means nothing was written, and says why."""

from ledger.errors import CryptoadminError


class OutgoingError(CryptoadminError, ValueError):
    """A withdrawal that cannot be queued; nothing was written. `field` names the input at
    fault (user_id, amount, address) when there is one, so a form can show it there."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class CloseError(CryptoadminError, ValueError):
    """A close by hand refused; nothing was written. The message says why."""


class DecisionError(CryptoadminError, ValueError):
    """An approval, rejection or cancellation refused (no permission, same person, no
    reason, or someone else acted first); nothing was written. The message says why."""
