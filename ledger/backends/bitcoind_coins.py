"""Sending with bitcoind: sendmany, and the sign-first path (build, sign, send the bytes)
with the coin look-ups a broadcast needs afterwards."""

from __future__ import annotations

from cryptoadmin import faults

from .. import rawtx
from ..money import AmountError, format_units
from .base import (
    BackendError,
    BadReply,
    Conflict,
    FeeTooHigh,
    InsufficientFunds,
    NotSent,
    OutcomeUnknown,
    Refused,
    SignedTx,
    TransactionNotFound,
    check_txid,
    seconds_left,
)

# sendrawtransaction's answers for bytes the node already has: in its mempool (-27 on every
# version), or in its chain (-27 "already in block chain"; Bitcoin SV: -26 "257:
# txn-already-known").
_ALREADY_HAVE = ("already in the mempool", "already in block chain", "txn-already-known")
# The signing call's name per node URL, learnt from the node's first answer: Bitcoin Core
# >= 0.17 has signrawtransactionwithwallet; older nodes (this Bitcoin SV) only signrawtransaction.
_SIGN_METHOD: dict[str, str] = {}


class BitcoindCoins:
    """Mixed into BitcoindBackend, on top of BitcoindRpc's calls."""

    def send_many(
        self,
        outputs: dict[str, int],
        comment: str,
        *,
        nonce: str = "",
        deadline: float | None = None,
    ) -> str:
        if not outputs:
            raise AmountError("send_many needs at least one output")
        amounts = {address: self.amount_str(units) for address, units in outputs.items()}
        self._gather_accounts()
        # Measured after gathering: sendmany itself must answer, or be given up, within the lease.
        timeout = seconds_left(deadline, self.timeout)
        txid = self.call_once("sendmany", "", amounts, 1, comment, timeout=timeout)
        if not isinstance(txid, str) or len(txid) != 64:
            raise OutcomeUnknown(f"sendmany returned {txid!r}, not a txid")
        return txid

    def _gather_accounts(self):
        """On nodes that still have accounts, sendmany "" may spend only the default account's
        share, so coins that reached labelled addresses (an imported legacy wallet's) would be
        booked on a user yet refused with 'Account has insufficient funds'. `move` is the node's
        own bookkeeping: no coin moves and nothing is broadcast, so any failure here is NotSent."""
        try:
            accounts = self.call("listaccounts", 1)
        except BackendError as exc:
            if exc.code in (-32601, -32):  # no accounts on this node (removed, or deprecated)
                return
            raise NotSent(f"before sendmany: {exc}", code=exc.code) from exc
        if not isinstance(accounts, dict):
            raise NotSent(
                f"before sendmany: listaccounts returned {type(accounts).__name__}, not an object"
            )
        try:
            for name, balance in accounts.items():
                units = self.units(balance)
                if name and units > 0:
                    self.call_once("move", name, "", self.amount_str(units))
        except BackendError as exc:
            raise NotSent(
                f"before sendmany, moving accounts to the default one: {exc}", code=exc.code
            ) from exc

    # -- sign first, send after -------------------------------------------------------------

    signs_first = True

    def build_signed(
        self,
        outputs,
        *,
        fee_rate=None,
        confirmation_target=None,
        max_fee=None,
        inputs=(),
        deadline=None,
    ):
        if not outputs:
            raise AmountError("build_signed needs at least one output")
        amounts = {address: self.amount_str(units) for address, units in outputs.items()}
        funded = self._funded(amounts, inputs, fee_rate, confirmation_target, deadline)
        fee = self.units(funded.get("fee"))
        faults.point("broadcast.after_fund")  # inside the build: nothing signed or recorded
        decoded = self._call_by(deadline, "decoderawtransaction", funded["hex"])
        spent = tuple(f"{v['txid']}:{v['vout']}" for v in decoded.get("vin", []))
        if not set(inputs) <= set(spent):
            raise BadReply(f"fundrawtransaction dropped coins it was given: {sorted(inputs)}")
        if max_fee is not None and fee > max_fee:
            raise FeeTooHigh(
                f"the fee would be {format_units(fee, self.decimals)}, above the cap of "
                f"{format_units(max_fee, self.decimals)}",
                fee=fee,
                cap=max_fee,
            )
        signed = self._sign(funded["hex"], deadline)
        if not isinstance(signed, dict) or not signed.get("complete") or not signed.get("hex"):
            raise Refused(f"the node could not sign the transaction: {str(signed)[:300]}")
        decoded = self._call_by(deadline, "decoderawtransaction", signed["hex"])
        txid = check_txid(decoded.get("txid"), "decoded tx")
        return SignedTx(raw=signed["hex"], txid=txid, fee=fee, inputs=spent)

    def _funded(self, amounts, inputs, fee_rate, confirmation_target, deadline) -> dict:
        """The unsigned transaction paying `amounts`, funded by the node from the wallet's coins."""

        def call(method, *params):
            return self._call_by(deadline, method, *params)

        # No `move` first, unlike sendmany: fundrawtransaction picks from every coin of the
        # wallet, whatever account a node that still has accounts put it in. It keeps the
        # coins given here (locked or not) and adds what is missing.
        try:
            raw = call("createrawtransaction", [_coin(c) for c in inputs], amounts)
            # Coins are locked by the caller once the signed transaction is recorded with them
            # (lock_coins): a lock taken here would outlive a process killed before that
            # record, until the node restarts. Only one broadcast of a wallet is open at a
            # time, so no other broadcast of ours picks these coins meanwhile.
            options = {"lockUnspents": False}
            if fee_rate is not None:
                options["feeRate"] = format_units(fee_rate, self.decimals)
            elif confirmation_target is not None:
                options["conf_target"] = confirmation_target
            funded = call("fundrawtransaction", raw, options)
        except BackendError as exc:
            # Bitcoin Core answers a dust output, as sendmany did with -6, "Transaction amount
            # too small": an output refused, nothing locked.
            if exc.code == -4 and ("nsufficient funds" in str(exc) or "too small" in str(exc)):
                raise InsufficientFunds(str(exc), code=exc.code) from exc
            raise
        if not isinstance(funded, dict) or not isinstance(funded.get("hex"), str):
            raise BadReply(
                f"fundrawtransaction reply is not an object with hex: {str(funded)[:200]}"
            )
        return funded

    def _sign(self, raw: str, deadline=None):
        method = _SIGN_METHOD.get(self.url, "signrawtransactionwithwallet")
        try:
            return self._call_by(deadline, method, raw)
        except BackendError as exc:
            if exc.code != -32601 or method == "signrawtransaction":
                raise
        _SIGN_METHOD[self.url] = "signrawtransaction"
        return self._call_by(deadline, "signrawtransaction", raw)

    def send_raw(self, raw: str, txid: str, *, deadline: float | None = None) -> str:
        timeout = seconds_left(deadline, self.timeout)
        try:
            got = self.call_once("sendrawtransaction", raw, timeout=timeout)
        except BackendError as exc:
            message = str(exc)
            if exc.code in (-27, -26) and any(m in message for m in _ALREADY_HAVE):
                return txid
            if exc.code == -25 or (exc.code == -26 and "conflict" in message):
                raise Conflict(
                    f"its inputs are spent by another transaction or missing: {message}",
                    code=exc.code,
                ) from exc
            if exc.code in (-26, -22):  # rejected by policy or unreadable: never accepted
                reason = Refused.DUST if "dust" in message else Refused.POLICY
                raise Refused(message, code=exc.code, reason=reason) from exc
            raise
        if got != txid:
            raise OutcomeUnknown(f"sendrawtransaction answered {got!r}, not {txid}")
        return txid

    def known_transaction(self, txid: str) -> int | None:
        try:
            return self.get_transaction(txid).confirmations
        except TransactionNotFound:
            pass
        try:
            self.call("getmempoolentry", txid)
            return 0
        except BackendError as exc:
            if exc.code == -5:
                return None
            raise

    def lock_coins(self, inputs, lock: bool = True) -> None:
        coins = [_coin(i) for i in inputs]
        if coins:
            # lockunspent's first argument is "unlock".
            self.call("lockunspent", not lock, coins)

    def locked_coins(self) -> set[str]:
        return {f"{c['txid']}:{c['vout']}" for c in self.call("listlockunspent")}

    def find_spender(self, inputs, exclude: str = "") -> str:
        for txid, _ in self._spenders(inputs, exclude, 200):
            return txid
        return ""

    def _spenders(self, inputs, exclude: str, count: int):
        """(txid, confirmations) of the wallet's recent sends other than `exclude` spending
        one of `inputs`."""
        wanted = set(inputs)
        txids = []
        for entry in self.list_transactions(count):
            t = entry.get("txid")
            if t and t != exclude and t not in txids and entry.get("category") == "send":
                txids.append(t)
        for t in txids:
            try:
                tx = self.call("gettransaction", t)
                vin = self.call("decoderawtransaction", tx.get("hex")).get("vin", [])
            except BackendError:
                continue
            if any(f"{v.get('txid')}:{v.get('vout')}" in wanted for v in vin):
                yield t, int(tx.get("confirmations", 0))

    def unspent_coins(self, coins) -> set[str]:
        coins = list(coins)
        replies = self.batch([("gettxout", *_coin(c).values(), True) for c in coins])
        out = set()
        for coin, reply in zip(coins, replies, strict=True):
            if isinstance(reply, BackendError):
                raise reply
            if reply is not None:
                out.add(coin)
        return out

    def transaction_coins(self, txid: str) -> set[str]:
        raw = self.call("gettransaction", txid).get("hex")
        try:
            return rawtx.coins(raw)
        except (rawtx.RawTxError, ValueError, TypeError):
            raise BadReply(f"gettransaction {txid}: its hex is not a transaction") from None

    def spender_confirmations(self, coins, exclude: str = "") -> int | None:
        depths = [c for _, c in self._spenders(coins, exclude, 1000)]
        return max(depths) if depths else None

    def decode_outputs(self, raw: str) -> dict[str, int]:
        paid: dict[str, int] = {}
        for out in self.call("decoderawtransaction", raw).get("vout", []):
            for address in out.get("scriptPubKey", {}).get("addresses", [])[:1]:
                paid[address] = paid.get(address, 0) + self.units(out["value"])
        return paid

    def spends_own_coins(self, txid: str) -> bool:
        # bitcoind lists "send" details only for transactions whose inputs its wallet debited.
        return any(out.category == "send" for out in self.get_transaction(txid).outputs)


def _coin(text: str) -> dict:
    txid, _, vout = text.partition(":")
    return {"txid": txid, "vout": int(vout)}
