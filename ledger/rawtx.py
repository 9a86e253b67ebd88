"""The serialized transaction format (legacy and BIP 144 segwit), read without a node: the
coins a transaction spends, what it pays, and its txid. block.io's client decodes the raw
transactions it is given with it, and the one-payment property is checked with it from the
signed transactions the database holds."""

from __future__ import annotations

import hashlib

from cryptoadmin.errors import CryptoadminError


class RawTxError(CryptoadminError, ValueError):
    """The bytes are not a serialized transaction."""


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def varint(raw: bytes, pos: int) -> tuple[int, int]:
    first = raw[pos]
    if first < 0xFD:
        return first, pos + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return int.from_bytes(raw[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def parse(raw: bytes) -> tuple[list[tuple[str, int]], list[tuple[int, bytes]], bytes]:
    """(inputs as (prev txid, vout), outputs as (base units, scriptPubKey), the serialization
    without witness data) of a serialized transaction, legacy or BIP 144 segwit."""
    try:
        pos = 4
        segwit = raw[pos] == 0 and raw[pos + 1] == 1
        if segwit:
            pos += 2
        body_start = pos
        n_in, pos = varint(raw, pos)
        inputs = []
        for _ in range(n_in):
            inputs.append(
                (
                    raw[pos : pos + 32][::-1].hex(),
                    int.from_bytes(raw[pos + 32 : pos + 36], "little"),
                )
            )
            pos += 36
            length, pos = varint(raw, pos)
            pos += length + 4
        n_out, pos = varint(raw, pos)
        outputs = []
        for _ in range(n_out):
            value = int.from_bytes(raw[pos : pos + 8], "little")
            length, pos = varint(raw, pos + 8)
            outputs.append((value, raw[pos : pos + length]))
            pos += length
        body_end = pos
        if segwit:
            for _ in range(n_in):
                items, pos = varint(raw, pos)
                for _ in range(items):
                    length, pos = varint(raw, pos)
                    pos += length
        if pos + 4 != len(raw):
            raise IndexError
        stripped = raw[:4] + raw[body_start:body_end] + raw[pos : pos + 4] if segwit else raw
        return inputs, outputs, stripped
    except (IndexError, KeyError):
        raise RawTxError("not a serialized transaction") from None


def txid(raw: bytes) -> str:
    """The txid: double SHA-256 of the serialization without witness data (BIP 144), so a
    segwit transaction's is not the hash of its bytes."""
    return sha256d(parse(raw)[2])[::-1].hex()


def coins(raw_hex: str) -> set[str]:
    """The coins ("txid:vout") a transaction given in hex spends."""
    return {f"{t}:{v}" for t, v in parse(bytes.fromhex(raw_hex))[0]}
