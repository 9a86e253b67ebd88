"""The raw transaction decoder (ledger/rawtx.py) against the node's own decoderawtransaction."""

import pytest

from ledger import rawtx
from tests.blockio_server import new_address, raw_tx, stripped_tx, txid_of


def test_it_reads_the_coins_and_txid_of_a_transaction_the_node_signed(node):
    raw = node.rpc("createrawtransaction", [], {node.rpc("getnewaddress"): "1.5"})
    funded = node.rpc("fundrawtransaction", raw, {"lockUnspents": False})
    signed = node.rpc("signrawtransaction", funded["hex"])["hex"]
    decoded = node.rpc("decoderawtransaction", signed)

    assert rawtx.txid(bytes.fromhex(signed)) == decoded["txid"]
    assert rawtx.coins(signed) == {f"{v['txid']}:{v['vout']}" for v in decoded["vin"]}


def test_it_reads_a_segwit_transaction_by_its_txid_without_witness():
    spent = [("ab" * 32, 3), ("cd" * 32, 0)]
    raw = raw_tx([(new_address()[0], 5000)], inputs=spent, segwit=True)

    assert rawtx.txid(raw) == txid_of(stripped_tx(raw, n_inputs=2))
    assert rawtx.coins(raw.hex()) == {"ab" * 32 + ":3", "cd" * 32 + ":0"}
    with pytest.raises(rawtx.RawTxError):
        rawtx.coins(raw.hex()[:-10])
