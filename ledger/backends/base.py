"""The backend interface every wallet backend implements, and the errors it raises.

Amounts cross this interface as integer base units; each backend converts exactly at
its own boundary (bitcoind speaks Decimal JSON numbers, block.io decimal strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptoadmin.errors import CryptoadminError

from ..txids import is_txid


class BackendError(CryptoadminError):
    """Base of every error a backend raises; carries the node's own message."""

    def __init__(self, message, *, code=None):
        super().__init__(message)
        self.code = code


class NodeUnreachable(BackendError):
    """The node could not be reached or did not answer in time."""


class NotSent(NodeUnreachable):
    """The request provably never reached the node (connection refused): nothing happened."""


class HostRefused(NotSent):
    """The node URL names a host the deployment does not allow (NODE_HOSTS): never called.
    `code` is ledger.hosts.UrlRefused's."""


class OutcomeUnknown(BackendError):
    """A state-changing request may or may not have taken effect (timeout, connection lost
    mid-call)."""


class AlreadySent(BackendError):
    """The backend refused a send because the same send (same nonce) was already made: it left
    with the earlier request, whose txid this reply does not give."""


class TransactionNotFound(BackendError):
    """The node's wallet does not know this txid."""


class InsufficientFunds(BackendError):
    """The wallet cannot pay this: nothing was sent."""


class InvalidAddress(BackendError):
    """The node rejects the address: nothing was sent."""


class BadReply(BackendError):
    """The node answered something we cannot trust (wrong shape, sub-unit precision)."""


class Refused(BackendError):
    """The node refuses this signed transaction for good (dust, a policy rule): it is not in
    its mempool or chain, and the same bytes will never be accepted. `reason` says why, as a
    code read where the node's answer enters: DUST (an output too small: the others may go
    alone) or POLICY (the transaction as a whole)."""

    DUST = "dust"
    POLICY = "policy"

    def __init__(self, message, *, code=None, reason: str = POLICY):
        super().__init__(message, code=code)
        self.reason = reason


class Conflict(BackendError):
    """The signed transaction's inputs are spent by another transaction, or gone: it can
    never confirm. `conflicting_txid` is that other transaction when it could be found."""

    def __init__(self, message, *, code=None, conflicting_txid: str = ""):
        super().__init__(message, code=code)
        self.conflicting_txid = conflicting_txid


class FeeTooHigh(BackendError):
    """Funding the transaction would pay more fee than the currency's cap: nothing was
    signed, and the coins it had chosen are unlocked again."""

    def __init__(self, message, *, fee: int, cap: int):
        super().__init__(message)
        self.fee, self.cap = fee, cap


@dataclass(frozen=True)
class SignedTx:
    """A funded, signed transaction not yet handed to the network. `inputs` are the coins it
    spends as "txid:vout"; `fee` is what its inputs hold less its outputs (base units)."""

    raw: str
    txid: str
    fee: int
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class TxOutput:
    """One wallet-relevant entry of a transaction: `category` is
    receive/send/generate/immature/orphan."""

    address: str
    category: str
    amount: int  # base units, always positive
    vout: int | None = None


@dataclass(frozen=True)
class TxInfo:
    txid: str
    confirmations: int  # -1 or less: conflicted
    fee: int | None  # base units paid by our wallet (positive), None if not ours
    outputs: tuple[TxOutput, ...] = ()
    blockhash: str | None = None
    comment: str = ""

    def received(self) -> dict[str, int]:
        """address -> total base units received on it in this transaction."""
        totals: dict[str, int] = {}
        for out in self.outputs:
            if out.category == "receive":
                totals[out.address] = totals.get(out.address, 0) + out.amount
        return totals

    def sent(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for out in self.outputs:
            if out.category == "send":
                totals[out.address] = totals.get(out.address, 0) + out.amount
        return totals


@dataclass(frozen=True)
class ReceivedByAddress:
    address: str
    amount: int
    confirmations: int
    txids: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ReceivedEntry:
    """One receive in the wallet's history, as paged by iter_received."""

    txid: str
    address: str
    amount: int
    confirmations: int


@dataclass(frozen=True)
class SinceBlock:
    transactions: tuple[TxInfo, ...]
    lastblock: str
    # Entries the node answered in a shape we cannot trust: txid -> BadReply, in place.
    errors: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ChainTip:
    height: int
    hash: str
    # The id of the wallet's newest transaction, read in the same round trip (None: not known).
    newest_tx: str | None = None


def checked_node_url(url) -> str:
    """`url` if the deployment lets the server call its host (NODE_HOSTS), else HostRefused:
    every backend asks this before each connection, whatever a wallet's settings say."""
    from django.conf import settings

    from ..hosts import UrlRefused, check_url

    try:
        check_url(url, settings.NODE_HOSTS)
    except UrlRefused as exc:
        raise HostRefused(f"node URL refused: {exc}", code=exc.code) from None
    return url


def check_txid(value, what: str) -> str:
    """A txid from a node reply must be 64 lowercase hex characters, or the reply is bad."""
    if not is_txid(value):
        raise BadReply(f"{what}: {str(value)[:80]!r} is not a transaction id")
    return value


class Backend:
    """What the ledger asks of a wallet backend. One instance per unit of work."""

    def __init__(self, wallet, timeout: float | None = None):
        from django.conf import settings

        self.wallet = wallet
        self.decimals = wallet.currency.decimals
        # Seconds any one node call may take; probes (health, overview) ask for a short one.
        self.timeout = timeout or settings.NODE_RPC_TIMEOUT

    def new_address(self, label: str = "") -> str:
        raise NotImplementedError

    def validate_address(self, address: str) -> bool:
        raise NotImplementedError

    def get_balance(self, minconf: int = 0) -> int:
        """The wallet's spendable-or-pending balance in base units."""
        raise NotImplementedError

    def get_transaction(self, txid: str) -> TxInfo:
        raise NotImplementedError

    def get_transactions(self, txids: list[str]) -> dict[str, TxInfo | BackendError]:
        """Many at once; a per-txid failure is returned in place of that txid's TxInfo."""
        result: dict[str, TxInfo | BackendError] = {}
        for txid in txids:
            try:
                result[txid] = self.get_transaction(txid)
            except (TransactionNotFound, BadReply) as exc:
                result[txid] = exc
        return result

    def list_since_block(self, blockhash: str | None, target_confirmations: int = 1) -> SinceBlock:
        """Wallet transactions in blocks after `blockhash` (all if None) and unconfirmed ones;
        `lastblock` is the main-chain block `target_confirmations` deep (1: the tip).
        Backends without it raise NotImplementedError and the tracker polls by txid."""
        raise NotImplementedError

    def chain_tip(self) -> ChainTip:
        """The node's best block, height and hash read together. Backends without blocks to
        follow (block.io) raise NotImplementedError and the tracker asks every open row by txid."""
        raise NotImplementedError

    def since_tip(self, blockhash: str, heights: list[int]) -> tuple[SinceBlock, dict, str | None]:
        """In one round trip: the wallet transactions in blocks after `blockhash` and the
        unconfirmed ones; the main chain's block hash at each of `heights` (None past the tip);
        and the tip's hash after both (to see a block that arrived meanwhile)."""
        raise NotImplementedError

    def block_hashes(self, heights: list[int]) -> dict:
        """The main chain's block hash at each height (None past the tip), in one round trip."""
        raise NotImplementedError

    def get_transactions_at_tip(self, txids: list[str]) -> tuple[dict, str | None]:
        """get_transactions, and the tip's hash read after them in the same round trip."""
        return self.get_transactions(txids), None

    # True when a repeated send with the same nonce cannot pay twice (within a window).
    supports_nonce = False
    # True when a broadcast is built and signed here (build_signed), committed by the caller,
    # then handed to the network (send_raw): the same signed bytes can only pay once.
    signs_first = False

    def build_signed(
        self,
        outputs: dict[str, int],
        *,
        fee_rate: int | None = None,
        confirmation_target: int | None = None,
        max_fee: int | None = None,
        inputs=(),
        deadline: float | None = None,
    ) -> SignedTx:
        """Build a transaction paying `outputs`, spending every coin of `inputs` ("txid:vout",
        locked ones included) and funded with more of this wallet's coins as needed, at
        `fee_rate` base units per 1000 bytes (or the node's estimate for `confirmation_target`
        blocks, or the node's default), and signed. Nothing reaches the network. Each node
        call ends before `deadline` (time.monotonic()), or is not started: NotSent. Raises
        InsufficientFunds / InvalidAddress / Refused, FeeTooHigh (above `max_fee`)."""
        raise NotImplementedError

    def unspent_coins(self, coins) -> set[str]:
        """Those of `coins` ("txid:vout") that no transaction spends, in the chain or the
        node's mempool."""
        raise NotImplementedError

    def transaction_coins(self, txid: str) -> set[str]:
        """The coins ("txid:vout") a transaction the node knows spends."""
        raise NotImplementedError

    def spender_confirmations(self, coins, exclude: str = "") -> int | None:
        """Confirmations of the deepest wallet transaction other than `exclude` that spends one
        of `coins`, None when none is known."""
        raise NotImplementedError

    def send_raw(self, raw: str, txid: str, *, deadline: float | None = None) -> str:
        """Hand a signed transaction to the network; returns its txid, also when the node
        already had it (mempool or chain). Raises Conflict (its inputs are spent by another
        transaction or missing), Refused (never accepted), NotSent, OutcomeUnknown."""
        raise NotImplementedError

    def known_transaction(self, txid: str) -> int | None:
        """Confirmations of a transaction the node knows (its wallet, mempool or chain: 0 in
        the mempool, negative when conflicted), None when it knows nothing of it."""
        raise NotImplementedError

    def lock_coins(self, inputs, lock: bool = True) -> None:
        """Keep (or release) coins from the wallet's coin selection ("txid:vout" each)."""
        raise NotImplementedError

    def locked_coins(self) -> set[str]:
        raise NotImplementedError

    def find_spender(self, inputs, exclude: str = "") -> str:
        """A wallet transaction other than `exclude` spending one of `inputs`, or ''."""
        return ""

    def decode_outputs(self, raw: str) -> dict[str, int]:
        """address -> base units paid by a raw transaction, read by the node."""
        raise NotImplementedError

    # True when find_by_comment can prove a send never reached the wallet.
    keeps_comments = True

    def send_many(
        self,
        outputs: dict[str, int],
        comment: str,
        *,
        nonce: str = "",
        deadline: float | None = None,
    ) -> str:
        """Pay every address its base units in one transaction; returns the txid.

        `deadline` (time.monotonic()) is when the caller's lease on this send runs out: the
        state-changing request is not started without time left, and its timeouts are cut so
        the reply, or the giving up, comes before it. `nonce` is passed on where the backend
        knows one (block.io). Raises NotSent / InsufficientFunds / InvalidAddress when
        provably nothing was sent, AlreadySent when the nonce was used, OutcomeUnknown when
        it may have been sent.
        """
        raise NotImplementedError

    def spends_own_coins(self, txid: str) -> bool:
        """Whether every input of the transaction spends this wallet's coins."""
        raise NotImplementedError

    def find_sent(self, outputs: dict[str, int], since, *, any_output: bool = False) -> list[str]:
        """Txids of wallet sends since `since` (a datetime) paying exactly `outputs` (outputs to
        our own addresses included), where the backend cannot search by comment; `any_output`:
        those paying at least one of `outputs`."""
        raise NotImplementedError

    def find_by_comment(self, comment: str) -> list[str]:
        """Txids of wallet transactions carrying this comment (to settle an interrupted
        broadcast)."""
        raise NotImplementedError

    def list_received_by_address(self, minconf: int = 0) -> list[ReceivedByAddress]:
        raise NotImplementedError

    def iter_received(self, page_size: int = 1000, progress=None):
        """Every receive in the wallet's history, page by page, unconfirmed included.

        Must not stop at a page that happens to hold no receives (the first version did).
        `progress(n)` is called with the number of history entries read per page."""
        raise NotImplementedError

    def history_size(self) -> int | None:
        """How many history entries iter_received will read, if the backend knows (for progress
        bars)."""
        return None

    def block_height(self) -> int:
        raise NotImplementedError


def seconds_left(deadline: float | None, default: float) -> float:
    """The timeout a state-changing call may use so that it ends before `deadline`: a call
    is a connect and a reply wait, each bounded by the timeout, so half of what is left."""
    if deadline is None:
        return default
    import time

    left = deadline - time.monotonic()
    if left < 1:
        raise NotSent(
            "the send's lease has too little time left for the node call; nothing was sent"
        )
    return min(default, left / 2)
