"""What a person reads about a network transaction: whom it paid (the ledger entries that name
its users and addresses), its confirmations as they are now, and its life as a timeline. The
network transactions admin (list, page, CSV, History) renders these."""

from __future__ import annotations

from django.db.models import Case, F, IntegerField, Prefetch, When
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from .models import POLLED_STATES, NetworkTransaction, Transaction

# The entries that say whom a row paid, loaded with one query per page of the list.
ENTRIES = Prefetch(
    "ledger_entries",
    queryset=Transaction.objects.select_related(
        "address", "source__currency", "destination__currency", "created_by"
    ).order_by("id"),
)


def with_confirmations_shown(queryset):
    """`confirmations_shown`: what a person reads, true now. Any mined row still believed in
    its block (open, closed, closed by hand) counts from its wallet's tip; a troubled or unmined
    one shows its stored value. Display only: the poller reads `with_confirmations`."""
    derived = F("wallet__last_block_height") - F("block_height") + 1
    return queryset.annotate(
        confirmations_shown=Case(
            When(
                state__in=[
                    NetworkTransaction.State.OPEN,
                    NetworkTransaction.State.CLOSED,
                    NetworkTransaction.State.CLOSED_BY_HAND,
                ],
                block_height__isnull=False,
                wallet__last_block_height__isnull=False,
                then=derived,
            ),
            default=F("confirmations"),
            output_field=IntegerField(),
        )
    )


def entry_url(entry) -> str:
    return reverse("admin:ledger_transaction_change", args=[entry.pk])


def person(entry) -> str | None:
    """The user an entry concerns: the one credited (deposit, return) or debited (sent)."""
    return entry.destination.user_id or entry.source.user_id


def paid(row) -> list[tuple]:
    """[(user id, address, entry)] of the row's entries that concern a user; before a deposit
    is credited, the user and address it pays with no entry (None)."""
    found = [
        (person(e), e.address.address if e.address_id else "", e)
        for e in row.ledger_entries.all()
        if person(e)
    ]
    if not found and row.paid_address_id:
        address = row.paid_address
        return [(address.account.user_id if address.account_id else "", address.address, None)]
    return found


def paid_cell(row):
    """The list's "paid" cell: the first user (a link to the entry), their address cut with
    the whole on hover, and how many more."""
    rows = paid(row)
    if not rows:
        return "awaiting credit" if row.type == NetworkTransaction.Type.DEPOSIT else "—"
    user, address, entry = rows[0]
    if entry is None:
        return format_html(
            '<a href="{}">{}</a> <code title="{}">{}</code><br><small>awaiting credit</small>',
            reverse("person", args=[user]),
            user,
            address,
            f"{address[:12]}…" if len(address) > 13 else address,
        )
    more = f" +{len(rows) - 1}" if len(rows) > 1 else ""
    return format_html(
        '<a href="{}" title="their page">{}</a>{} <a href="{}" title="the ledger entry">'
        '<code title="{}">{}</code></a>',
        reverse("person", args=[user]),
        user,
        more,
        entry_url(entry),
        address,
        f"{address[:12]}…" if len(address) > 13 else address,
    )


def entries_table(row):
    """The page's "ledger entries": each with its link, kind, amount, accounts and address."""
    entries = list(
        row.ledger_entries.select_related("address", "currency", "source", "destination")
    )
    if not entries:
        return "none yet"
    return format_html(
        '<table class="figures" id="ledger-entries">{}</table>',
        format_html_join(
            "",
            '<tr><td><a href="{}">entry #{}</a></td><td>{}</td><td class="amount">{}</td>'
            "<td>{} → {}</td><td><code>{}</code></td></tr>",
            (
                (
                    entry_url(e),
                    e.pk,
                    e.get_kind_display(),
                    e.currency.amount(e.amount),
                    e.source,
                    e.destination,
                    e.address.address if e.address_id else "",
                )
                for e in entries
            ),
        ),
    )


def confirmations_cell(row):
    """Confirmations as they are now (derived from the wallet's tip: see
    `with_confirmations_shown`) and when that tip was read. A polled row reads "n / threshold";
    a finished one, the number alone."""
    shown = row.confirmations_shown
    polled = row.state in POLLED_STATES
    text = f"{shown} / {row.currency.polling_threshold}" if polled else str(shown)
    checked = (
        row.wallet.last_polled_at if row.block_height is not None else row.last_checked_at
    ) or row.last_checked_at
    if checked is None:
        return format_html("<span>{}</span>", text)
    return format_html(
        '<span title="checked at {}">{}</span><br><small class="checked">checked {}</small>',
        timezone.localtime(checked).strftime("%Y-%m-%d %H:%M:%S %Z"),
        text,
        ago(checked),
    )


def ago(when) -> str:
    """'20 s ago', '3 minutes ago': seconds count when the poller runs every few seconds."""
    seconds = int((timezone.now() - when).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    return f"{timesince(when, depth=1)} ago"


def timeline(row, actions=()) -> list[tuple]:
    """[(when, who, what)] of a row's life, oldest first, from its own columns and entries and
    the people's `actions` on it (admin history entries)."""
    events = [(row.opened_at, None, f"Seen: {row.get_type_display()} {row.txid}")]
    events += [(a.action_time, a.user, a.get_change_message()) for a in actions]
    for user, address, entry in paid(row):
        if entry is None:
            continue  # not credited yet: nothing happened to it but being seen
        what = format_html(
            '{} {} for {} (<a href="{}">entry #{}</a>{})',
            "Credited" if entry.kind == Transaction.Kind.DEPOSIT else entry.get_kind_display(),
            entry.currency.amount(entry.amount),
            user,
            entry_url(entry),
            entry.pk,
            format_html(", address <code>{}</code>", address) if address else "",
        )
        events.append((entry.created_at, entry.created_by, what))
    if row.state_changed_at and row.state not in (row.State.OPEN, row.State.CLOSED_BY_HAND):
        events.append((row.state_changed_at, None, f"Became {row.get_state_display()}"))
    if row.closed_at:
        how = "Closed by hand" if row.state == row.State.CLOSED_BY_HAND else "Closed"
        reason = f": {row.close_reason}" if row.close_reason else ""
        events.append((row.closed_at, row.closed_by, f"{how}{reason}"))
    if row.last_error_at:
        events.append((row.last_error_at, None, f"Last error: {row.last_error}"))
    return sorted(events, key=lambda e: e[0])
