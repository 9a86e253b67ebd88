"""`accounts_changed` fires for every ledger write, with the affected accounts' ids and the
database alias. Receivers that cache balances defer their work with on_commit so that a
rolled-back write changes nothing. Any bulk write path must send it too."""

from django.dispatch import Signal

accounts_changed = Signal()  # kwargs: account_ids (set[int]), using (str)

# Money paths report what changed through `ledger.outbox.emit` inside their own transaction;
# the events app (a higher layer) receives this and writes the outbox rows in that transaction,
# so an event commits or rolls back with its change.
events_emitted = Signal()  # kwargs: rows (list[outbox.Emitted]), using (str)

# A deposit's confirmations or state may have changed (the poll cycle's end, a credit, a
# recorded or re-asked row): the events app compares each with what it last reported and
# emits deposit.seen / deposit.confirmations / deposit.conflicted in the sender's transaction.
# kwargs: wallet_id (every polled deposit of the wallet) or ids, confirmations ({id: n} the
# sender knows fresher than the row), using (str)
deposits_changed = Signal()
