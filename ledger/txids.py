"""What a transaction id is: 64 lowercase hexadecimal characters. The one definition, read by
the NetworkTransaction constraint, the backends' reply checks, walletnotify and the operator's
close form."""

import re

TXID_PATTERN = r"^[0-9a-f]{64}$"
TXID_RE = re.compile(TXID_PATTERN)


def is_txid(value) -> bool:
    return isinstance(value, str) and TXID_RE.fullmatch(value) is not None


def parse_txid(raw) -> str | None:
    """An operator's or a hook's txid, trimmed and lowercased; None if it is not one."""
    value = (raw or "").strip().lower() if isinstance(raw, str) or raw is None else ""
    return value if is_txid(value) else None
