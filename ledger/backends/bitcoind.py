"""The bitcoind backend: reads of the wallet and the chain here; the transport in
bitcoind_rpc, sending and coins in bitcoind_coins."""

from __future__ import annotations

import logging
import re
from decimal import Decimal

from ..money import AmountError, format_units, to_units
from ..txids import TXID_RE as HASH_RE  # a block hash has the shape of a txid
from ..txids import is_txid
from .base import (
    BackendError,
    BadReply,
    ChainTip,
    ReceivedByAddress,
    ReceivedEntry,
    SinceBlock,
    TxInfo,
    TxOutput,
    check_txid,
)
from .bitcoind_coins import _SIGN_METHOD, BitcoindCoins  # noqa: F401  (tests reset _SIGN_METHOD)
from .bitcoind_rpc import BitcoindRpc

log = logging.getLogger(__name__)


class BitcoindBackend(BitcoindCoins, BitcoindRpc):
    # -- conversions ---------------------------------------------------------------------

    def units(self, value) -> int:
        if not isinstance(value, (Decimal, int)) or isinstance(value, bool):
            raise BadReply(f"amount {value!r} from node is not a JSON number")
        try:
            return to_units(value, self.decimals)
        except AmountError as exc:
            raise BadReply(f"amount from node: {exc}") from None

    def amount_str(self, units: int) -> str:
        if not isinstance(units, int) or isinstance(units, bool):
            raise AmountError(
                f"refusing {type(units).__name__} amount {units!r}: base units must be int"
            )
        if units <= 0:
            raise AmountError(f"amount must be positive, got {units}")
        return format_units(units, self.decimals)

    def parse_tx(self, raw, txid: str | None = None) -> TxInfo:
        """A gettransaction-shaped reply as TxInfo; `txid`, when given, is the one we asked for."""
        if not isinstance(raw, dict):
            raise BadReply(
                f"gettransaction {txid or ''} reply is {type(raw).__name__}, not an object"
            )
        got = check_txid(raw.get("txid"), "gettransaction reply")
        if txid is not None and got != txid:
            raise BadReply(f"gettransaction {txid} answered for another txid {got}")
        try:
            confirmations = raw["confirmations"]
            if not isinstance(confirmations, int) or isinstance(confirmations, bool):
                raise TypeError(f"confirmations {confirmations!r} is not an integer")
            details = raw.get("details", [])
            if not isinstance(details, list) or not all(isinstance(d, dict) for d in details):
                raise TypeError("details is not a list of objects")
            outputs = []
            for d in details:
                outputs.append(
                    TxOutput(
                        address=d.get("address", ""),
                        category=str(d["category"]),
                        amount=abs(self.units(d["amount"])),
                        vout=d.get("vout"),
                    )
                )
            fee = raw.get("fee")
            return TxInfo(
                txid=got,
                confirmations=confirmations,
                fee=abs(self.units(fee)) if fee is not None else None,
                outputs=tuple(outputs),
                blockhash=raw.get("blockhash"),
                comment=raw.get("comment", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadReply(f"gettransaction {got} reply lacks {exc}") from None

    # -- the interface ---------------------------------------------------------------------

    def new_address(self, label: str = "") -> str:
        # No label on the node: on nodes that still have accounts (this regtest node among
        # them) a label is an account, and sendmany "" spends only the default account, so
        # coins received at labelled addresses could never be paid out. The books keep the label.
        return self.call_once("getnewaddress")

    def validate_address(self, address: str) -> bool:
        reply = self.call("validateaddress", address)
        return bool(reply.get("isvalid"))

    def get_balance(self, minconf: int = 0) -> int:
        return self.units(self.call("getbalance", "*", minconf))

    def get_transaction(self, txid: str) -> TxInfo:
        return self.parse_tx(self.call("gettransaction", txid), txid)

    def get_transactions(self, txids: list[str]) -> dict:
        result = {}
        chunk = 2000  # keeps one request body a few hundred KB
        for start in range(0, len(txids), chunk):
            part = txids[start : start + chunk]
            self._parse_replies(part, self.batch([("gettransaction", t) for t in part]), result)
        return result

    def _parse_replies(self, txids: list[str], replies: list, result: dict) -> None:
        """Each txid's gettransaction reply into `result`: a TxInfo, or its error in place."""
        for txid, reply in zip(txids, replies, strict=True):
            if isinstance(reply, BackendError):
                result[txid] = reply
                continue
            try:
                result[txid] = self.parse_tx(reply, txid)
            except BadReply as exc:
                result[txid] = exc

    def list_since_block(self, blockhash: str | None, target_confirmations: int = 1) -> SinceBlock:
        return self._parse_since(
            self.call("listsinceblock", blockhash or "", max(1, target_confirmations))
        )

    def _parse_since(self, reply) -> SinceBlock:
        """A reply we cannot read as a whole (not an object, no transactions list, an entry
        with no txid, no lastblock) is BadReply for the wallet; an entry of a known txid that
        is malformed is a BadReply in place for that txid (SinceBlock.errors)."""
        if not isinstance(reply, dict) or not isinstance(reply.get("transactions"), list):
            raise BadReply(
                "listsinceblock reply is not an object with a transactions list: "
                f"{str(reply)[:200]}"
            )
        lastblock = reply.get("lastblock")
        if not isinstance(lastblock, str) or not re.fullmatch(r"[0-9a-f]{64}", lastblock):
            raise BadReply(f"listsinceblock reply has no usable lastblock: {str(lastblock)[:80]!r}")
        grouped: dict[str, dict] = {}
        for entry in reply["transactions"]:
            if not isinstance(entry, dict):
                raise BadReply(f"listsinceblock entry is {type(entry).__name__}, not an object")
            txid = check_txid(entry.get("txid"), "listsinceblock entry")
            item = grouped.setdefault(
                txid,
                {
                    "txid": txid,
                    "confirmations": entry.get("confirmations"),
                    "blockhash": entry.get("blockhash"),
                    "details": [],
                    "comment": entry.get("comment", ""),
                },
            )
            if entry.get("fee") is not None:
                item["fee"] = entry["fee"]
            item["details"].append(entry)
        transactions, errors = [], {}
        for txid, raw in grouped.items():
            try:
                transactions.append(self.parse_tx(raw, txid))
            except BadReply as exc:
                errors[txid] = exc
        # A target deeper than the chain yields the null hash: "from the start" next time.
        return SinceBlock(
            tuple(transactions), "" if not lastblock.strip("0") else lastblock, errors
        )

    def chain_tip(self) -> ChainTip:
        # getblockchaininfo reads height and hash under one lock: never a mismatched pair.
        # The newest wallet transaction in the same round trip tells a new one under an
        # unchanged tip (being mined does not reorder the list). listtransactions walks the
        # wallet's ordered list from its newest end: its cost does not grow with the wallet's
        # history, where getwalletinfo sums balances over every transaction.
        reply, newest = self.batch(
            [("getblockchaininfo",), ("listtransactions", "*", NEWEST_ENTRIES, 0, True)]
        )
        if isinstance(reply, BackendError):
            raise reply
        if not isinstance(reply, dict):
            raise BadReply(f"getblockchaininfo reply is {type(reply).__name__}, not an object")
        height, best = reply.get("blocks"), reply.get("bestblockhash")
        if not isinstance(height, int) or isinstance(height, bool) or height < 0:
            raise BadReply(f"getblockchaininfo: blocks {str(height)[:40]!r} is not a height")
        return ChainTip(
            height, _block_hash(best, "getblockchaininfo bestblockhash"), _newest_txid(newest)
        )

    def since_tip(self, blockhash: str, heights: list[int]) -> tuple[SinceBlock, dict, str | None]:
        replies = self.batch(
            [("listsinceblock", blockhash or "", 1)]
            + [("getblockhash", h) for h in heights]
            + [("getbestblockhash",)]
        )
        if isinstance(replies[0], BackendError):
            raise replies[0]
        since = self._parse_since(replies[0])
        return since, self._hashes(heights, replies[1:-1]), _tip_after(replies[-1])

    def block_hashes(self, heights: list[int]) -> dict:
        return self._hashes(heights, self.batch([("getblockhash", h) for h in heights]))

    def _hashes(self, heights, replies) -> dict:
        hashes = {}
        for height, reply in zip(heights, replies, strict=True):
            if isinstance(reply, BackendError):
                if reply.code == -8:  # "Block height out of range": the chain got shorter
                    hashes[height] = None
                    continue
                raise reply
            hashes[height] = _block_hash(reply, f"getblockhash {height}")
        return hashes

    def get_transactions_at_tip(self, txids: list[str]) -> tuple[dict, str | None]:
        result, tip = {}, None
        chunk = 2000  # keeps one request body a few hundred KB
        starts = list(range(0, len(txids), chunk)) or [0]
        for start in starts:
            part = txids[start : start + chunk]
            calls = [("gettransaction", t) for t in part]
            if start == starts[-1]:
                calls.append(("getbestblockhash",))
            replies = self.batch(calls)
            # The last chunk's extra reply (the tip) is read below, not paired with a txid.
            self._parse_replies(part, replies[: len(part)], result)
            if start == starts[-1]:
                tip = _tip_after(replies[-1])
        return result, tip

    def list_transactions(self, count: int = 1000, skip: int = 0) -> list[dict]:
        return self.call("listtransactions", "*", count, skip, True)

    def iter_received(self, page_size: int = 1000, progress=None):
        # Pages overlap so a transaction arriving mid-scan (which shifts listtransactions'
        # window) cannot push an entry past a page boundary unseen; duplicates are harmless.
        overlap = max(1, page_size // 10)
        skip = 0
        while True:
            entries = self.list_transactions(page_size, skip)
            if not isinstance(entries, list):
                raise BadReply(f"listtransactions reply is {type(entries).__name__}, not a list")
            if progress:
                progress(len(entries) if skip == 0 else len(entries) - overlap)
            for e in entries:
                if not isinstance(e, dict):
                    raise BadReply(f"listtransactions entry is {type(e).__name__}, not an object")
                if e.get("category") == "receive" and e.get("address"):
                    txid = check_txid(e.get("txid"), "listtransactions entry")
                    yield ReceivedEntry(
                        txid,
                        e["address"],
                        self.units(e.get("amount")),
                        int(e.get("confirmations", 0)),
                    )
            # Only a short page means the end: a page of sends alone does not.
            if len(entries) < page_size:
                return
            skip += page_size - overlap

    def history_size(self) -> int | None:
        return int(self.call("getwalletinfo").get("txcount", 0)) or None

    def find_by_comment(self, comment: str) -> list[str]:
        found, skip, page = [], 0, 1000
        while True:
            entries = self.list_transactions(page, skip)
            found.extend(
                e["txid"] for e in entries if e.get("comment") == comment and e["txid"] not in found
            )
            if len(entries) < page:
                return found
            skip += page

    def list_received_by_address(self, minconf: int = 0) -> list[ReceivedByAddress]:
        rows = self.call("listreceivedbyaddress", minconf, False, True)
        return [
            ReceivedByAddress(
                r["address"],
                self.units(r["amount"]),
                int(r["confirmations"]),
                tuple(r.get("txids", ())),
            )
            for r in rows
        ]

    def block_height(self) -> int:
        return int(self.call("getblockcount"))


NEWEST_ENTRIES = 5  # listtransactions entries read with the tip (a "move" entry has no txid)


def _newest_txid(entries) -> str | None:
    """The txid of the newest entry that has one; None when unknown (an error, an empty wallet):
    the poller then follows the tip alone (the listener still sees unconfirmed deposits)."""
    if not isinstance(entries, list):
        log.warning("listtransactions gave no list: %.80r", entries)
        return None
    for entry in reversed(entries):  # oldest first
        txid = entry.get("txid") if isinstance(entry, dict) else None
        if is_txid(txid):
            return txid
    return None


def _block_hash(value, what: str) -> str:
    if not isinstance(value, str) or not HASH_RE.match(value):
        raise BadReply(f"{what}: {str(value)[:80]!r} is not a block hash")
    return value


def _tip_after(reply) -> str | None:
    """The trailing getbestblockhash of a batch; None if unreadable (the caller then trusts
    no height derived in that round trip)."""
    if isinstance(reply, str) and HASH_RE.match(reply):
        return reply
    return None
