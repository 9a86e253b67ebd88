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


def backend_class(name: str) -> type:
    """The backend class of a wallet's `backend` field: its capabilities (`supports_nonce`,
    `signs_first`, `keeps_comments`, ...) are class attributes, read without a node."""
    if name == "bitcoind":
        from .bitcoind import BitcoindBackend

        return BitcoindBackend
    if name == "blockio":
        from .blockio import BlockIoBackend

        return BlockIoBackend
    raise BackendError(f"unknown backend {name!r}")


def backend_for(wallet, timeout=None):
    """The backend instance for a wallet, by its `backend` field; `timeout` (seconds per node
    call) defaults to settings.NODE_RPC_TIMEOUT."""
    try:
        cls = backend_class(wallet.backend)
    except BackendError:
        raise BackendError(f"unknown backend {wallet.backend!r} for wallet {wallet.name}") from None
    return cls(wallet, timeout)
