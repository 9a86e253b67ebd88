from .base import (  # noqa: F401
    AlreadySent,
    BackendError,
    BadReply,
    InsufficientFunds,
    InvalidAddress,
    NodeUnreachable,
    NotSent,
    OutcomeUnknown,
    TransactionNotFound,
)


def backend_for(wallet):
    """The backend instance for a wallet, by its `backend` field."""
    if wallet.backend == "bitcoind":
        from .bitcoind import BitcoindBackend

        return BitcoindBackend(wallet)
    if wallet.backend == "blockio":
        from .blockio import BlockIoBackend

        return BlockIoBackend(wallet)
    raise BackendError(f"unknown backend {wallet.backend!r} for wallet {wallet.name}")
