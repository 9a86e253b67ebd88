"""Figures for the operator's home page, each in a bounded number of queries."""

import time
from datetime import timedelta

from django.db.models import Count, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from cryptoadmin import words

_NODE_CACHE: dict = {}
NODE_CACHE_SECONDS = 15
NODE_TIMEOUT = 3  # seconds: the page must come up even when a node hangs


def currency_rows():
    """Per currency: open / stuck network transactions, flagged, deposits credited today."""
    from ledger.models import Currency, NetworkTransaction, NetworkTransactionQuerySet, Transaction

    now = timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    open_counts = {
        r["currency_id"]: r
        for r in NetworkTransaction.objects.filter(state="open")
        .values("currency_id")
        .annotate(
            open=Count("id"),
            stuck=Count("id", filter=NetworkTransactionQuerySet.stuck_q(now)),
        )
    }
    flagged = dict(
        NetworkTransaction.objects.filter(flagged=True)
        .values_list("currency_id")
        .annotate(n=Count("id"))
    )
    deposits = {
        r["currency_id"]: r
        for r in Transaction.objects.filter(kind="deposit", created_at__gte=today)
        .values("currency_id")
        .annotate(n=Count("id"), total=Sum("amount"))
    }
    rows = []
    for c in Currency.objects.all():
        o, d = open_counts.get(c.id, {}), deposits.get(c.id, {})
        rows.append(
            {
                "currency": c,
                "open": o.get("open", 0),
                "stuck": o.get("stuck", 0),
                "flagged": flagged.get(c.id, 0),
                "deposits_today": d.get("n", 0),
                "deposits_today_total": d.get("total") or 0,
            }
        )
    return rows


def wallet_rows():
    """Per wallet: node reachability, block height, and the quick reconciliation figures
    (ledger.reconcile.quick): node balance, books, deposits awaiting credit (normal traffic,
    apart from the difference) and the difference. No listreceivedbyaddress on a page load:
    the full reconciliation reads it in the background ("Reconcile now").

    Node calls run in parallel threads (no database there) and are cached briefly, so a
    dead node costs the page at most its short timeout once per NODE_CACHE_SECONDS."""
    from ledger.models import NetworkTransaction, Wallet
    from ledger.reconcile import quick
    from ledger.services import wallet_books_balance

    wallets = list(Wallet.objects.active().select_related("currency"))
    if not wallets:
        return []
    nodes = _cached_node_figures(wallets)
    awaiting = NetworkTransaction.objects.filter(
        wallet__in=[w.pk for w in wallets]
    ).awaiting_credit_per_wallet()
    rows = []
    for wallet, node in zip(wallets, nodes, strict=True):
        row = {"wallet": wallet, **node}
        if node.get("balance_units") is None:
            row["books_units"] = wallet_books_balance(wallet)
        else:
            figures = quick(wallet, node["balance_units"], awaiting.get(wallet.pk, (0, 0)))
            row.update(
                books_units=figures.books_balance,
                awaiting_units=figures.awaiting_credit,
                unknown_amount=figures.unknown_amount,
                difference_units=figures.difference,
            )
            if figures.unknown_amount:
                # Recorded before ledger 0009 kept the amount: counted, never guessed.
                row["unknown_note"] = (
                    f"{words.count(figures.unknown_amount, 'open deposit')} of unknown amount"
                )
        rows.append(row)
    return rows


def _cached_node_figures(wallets):
    now = time.monotonic()
    keys = [(wallet.pk, str(wallet.backend_settings)) for wallet in wallets]
    stale = [
        w
        for w, key in zip(wallets, keys, strict=True)
        if key not in _NODE_CACHE or now - _NODE_CACHE[key][0] >= NODE_CACHE_SECONDS
    ]
    if stale:
        from ledger.backends import BackendError
        from ledger.probe import probe_wallets

        # A misconfigured wallet is shown as unreachable with the reason, never a 500 page.
        fresh = probe_wallets(
            stale,
            _node_figures,
            timeout=NODE_TIMEOUT,
            on_error=_unreachable,
            errors=(BackendError,),
        )
        for wallet, figures in zip(stale, fresh, strict=True):
            _NODE_CACHE[(wallet.pk, str(wallet.backend_settings))] = (time.monotonic(), figures)
    return [_NODE_CACHE[key][1] for key in keys]


def _node_figures(wallet, backend):
    return {
        "reachable": True,
        "height": backend.block_height(),
        "balance_units": backend.get_balance(minconf=0),
    }


def _unreachable(wallet, exc):
    error = f"{type(exc).__name__}: {exc}"[:200]
    return {"reachable": False, "error": error, "balance_units": None}


def schedule_rows():
    """Each schedule: last success, last failure with its error, next run, red if overdue."""
    from django_q.models import Schedule, Task

    schedules = list(Schedule.objects.all().order_by("name"))
    funcs = {s.func for s in schedules}
    last_ok = dict(
        Task.objects.filter(func__in=funcs, success=True)
        .values_list("func")
        .annotate(t=_max("stopped"))
    )
    failures = {}
    for t in (
        Task.objects.filter(func__in=funcs, success=False)
        .order_by("func", "-stopped")
        .values("func", "stopped", "result")
    ):
        failures.setdefault(t["func"], t)
    now = timezone.now()
    rows = []
    for s in schedules:
        interval = timedelta(minutes=s.minutes or 60)
        ok_at = last_ok.get(s.func)
        failure = failures.get(s.func)
        rows.append(
            {
                "schedule": s,
                "last_success": ok_at,
                "next_run": s.next_run,
                "last_failure": failure["stopped"] if failure else None,
                "last_error": str(failure["result"])[:300] if failure else "",
                "red": _overdue(now, ok_at, s.next_run, interval),
            }
        )
    return rows


def _overdue(now, last_success, next_run, interval):
    """No success in three intervals (counted from the first due run if it never succeeded)."""
    if last_success is not None:
        return now - last_success > 3 * interval
    return next_run is not None and now - next_run > 3 * interval


def _max(field):
    from django.db.models import Max

    return Max(field)


def deposits_per_hour(hours=24):
    """[(hour, count)] for the last `hours` hours, zero-filled, oldest first."""
    from ledger.models import Transaction

    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=hours - 1)
    counts = {
        r["h"]: r["n"]
        for r in Transaction.objects.filter(kind="deposit", created_at__gte=start)
        .annotate(h=TruncHour("created_at"))
        .values("h")
        .annotate(n=Count("id"))
    }
    return [
        (start + timedelta(hours=i), counts.get(start + timedelta(hours=i), 0))
        for i in range(hours)
    ]


def bar_chart_svg(series, width=720, height=140):
    """A server-side SVG bar chart: no JavaScript, nothing fetched from elsewhere."""
    from django.utils.html import format_html, format_html_join

    peak = max((n for _, n in series), default=0) or 1
    bar_w = width / max(len(series), 1)

    def f(x):  # format_html escapes arguments, so numbers go in as text
        return f"{x:.1f}"

    bars = format_html_join(
        "",
        (
            '<rect x="{}" y="{}" width="{}" height="{}" fill="#417690"><title>{}: {}</title></rect>'
            '<text x="{}" y="{}" font-size="9" text-anchor="middle" fill="#666">{}</text>'
        ),
        (
            (
                f(i * bar_w + 2),
                f(height - 14 - (n / peak) * (height - 30)),
                f(bar_w - 4),
                f((n / peak) * (height - 30)),
                h.strftime("%H:00"),
                n,
                f(i * bar_w + bar_w / 2),
                height - 2,
                # Every third hour counted back from the last bar, so the current hour is labelled.
                h.strftime("%H") if (len(series) - 1 - i) % 3 == 0 else "",
            )
            for i, (h, n) in enumerate(series)
        ),
    )
    return format_html(
        '<svg role="img" aria-label="Deposits per hour" width="{}" height="{}" viewBox="0 0 {} {}">'
        '<text x="4" y="12" font-size="11" fill="#333">peak {} / hour</text>{}</svg>',
        width,
        height,
        width,
        height,
        peak if any(n for _, n in series) else 0,
        bars,
    )
