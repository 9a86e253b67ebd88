"""Confirmation tracking: poll open network transactions, credit deposits exactly once.

A mined transaction's confirmations are `tip height - its block's height + 1`: between two
polls nothing changes for it but the tip, unless a reorg replaced its block. So each row
keeps where it was mined (block_hash, block_height), the wallet keeps the tip it last saw
(last_block_hash, last_block_height), and confirmations are derived from the two
(NetworkTransaction.objects.with_confirmations()), never rewritten row by row. One poll
cycle of a bitcoind wallet is, whatever the number of open rows:

- one batch of `getblockchaininfo` (the tip) and `listtransactions * 5` (the wallet's newest
  transaction; its cost does not grow with the wallet's history, where `getwalletinfo` walks
  every transaction). Unchanged tip and newest transaction: nothing else, except the rows
  with no block (unconfirmed, conflicted, vanished) asked by txid in one batch;
- an unchanged tip but another newest transaction (a wallet transaction arrived unmined, e.g.
  a deposit paid to us): one batch of `listsinceblock <last tip>` (the unconfirmed ones) and
  `getbestblockhash`; new deposits recorded, nothing placed or closed;
- a new tip: ONE batch of `listsinceblock <last tip>` (only the wallet transactions mined
  since, and the unconfirmed ones), `getblockhash <last tip's height>` (the last tip still
  there means every block below it is: no open row was reorged out) and `getbestblockhash`
  (a block arriving mid-cycle is seen, and no height is derived from a tip that moved). A
  reorg costs two more round trips: a getblockhash per height holding open rows (a row whose
  hash is no longer the main chain's there was reorged out), and `listsinceblock` again from
  below the lowest of them;
- a constant number of SQL statements: new deposits inserted, the window's rows placed in
  their blocks, rows past the polling threshold closed (range scan on block_height), then
  the few rows that need the node's word (no block, troubled, reorged, due a credit) read
  and asked by txid in one batch; deposits due a credit are credited many per transaction.

block.io has no blocks to follow (chain_tip raises NotImplementedError): its polled rows are
asked by txid in batches, as are a bitcoind wallet's when its node answers something unreadable.

THE RULE (issue 12), for everything that writes a network transaction row here, in
walletnotify and in rescan:

    A deposit row leaves the polled states (open, conflicted, vanished) only in the same
    database transaction that credits it, or when an operator closes it by hand, and then
    nothing credits it. Hand-closed rows are never touched by the poller, walletnotify or
    rescan: every write is a conditional UPDATE on the state the row was read in, never a
    write of a stale copy.

So: the bulk write of what the node said is `WHERE id = .. AND state = <state read>`; it never
closes an uncredited deposit. Crediting claims the row with one conditional UPDATE
(`credited_at IS NULL AND state = 'open'`) that also closes it when it is at the polling
threshold, and the ledger entries commit with that claim or not at all. Two workers never
credit twice; the UNIQUE (network transaction, address) constraint backs that, and the CHECK
network_tx_deposit_closed_only_credited backs the rule. A process killed anywhere leaves the
row polled and uncredited, or closed (or still open) and credited: never closed and uncredited.

A wallet whose node answers something malformed records the error on the wallet
(last_poll_error) and the other wallets are polled as usual; a malformed answer about one
transaction is recorded on that row (last_error).
"""
