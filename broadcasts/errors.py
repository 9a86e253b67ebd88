"""The broadcasts app's refusals: each means nothing was written, and says why."""

from cryptoadmin.errors import CryptoadminError


class OutgoingError(CryptoadminError, ValueError):
    """A withdrawal that cannot be queued; nothing was written. `field` names the input at
    fault (user_id, amount, address) when there is one, so a form can show it there; `code`
    names the refusal for machines (the API answers with it)."""

    def __init__(self, message: str, field: str | None = None, code: str = "refused"):
        super().__init__(message)
        self.field = field
        self.code = code


class DecisionError(CryptoadminError, ValueError):
    """An approval, rejection or cancellation refused (no permission, same person, no
    reason, or someone else acted first); nothing was written. The message says why."""
