from .base import (  # noqa: F401
    AlreadySent,
    BackendError,
    BadReply,
    Conflict,
    FeeTooHigh,
    HostRefused,
    InsufficientFunds,
    InvalidAddress,
    NodeUnreachable,
    NotSent,
    OutcomeUnknown,
    Refused,
    SignedTx,
    TransactionNotFound,
)


def backend_for(wallet, timeout=None):
    """The backend instance for a wallet, by its `backend` field; `timeout` (seconds per node
    call) defaults to settings.NODE_RPC_TIMEOUT."""
    if wallet.backend == "bitcoind":
        from .bitcoind import BitcoindBackend

        return BitcoindBackend(wallet, timeout)
    if wallet.backend == "blockio":
        from .blockio import BlockIoBackend

        return BlockIoBackend(wallet, timeout)
    raise BackendError(f"unknown backend {wallet.backend!r} for wallet {wallet.name}")
