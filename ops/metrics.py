"""/metrics: Prometheus text format, built from the database at each scrape.

prometheus_client rather than django-prometheus: what the on-call person needs is the state
of money in the database (open network transactions, queues, interrupted broadcasts) and of
the nodes, which is the same whichever web worker answers the scrape. A custom collector reads
it at scrape time in a bounded number of queries; django-prometheus's per-process request
counters would need a multiprocess directory shared by gunicorn workers and say nothing about
money. The balance cache figures are per process and are labelled with the process id.

Allowed for a staff session (signed in with its second factor when OTP_REQUIRED is on), or
`Authorization: Bearer <METRICS_TOKEN>` when it is set.
"""

from __future__ import annotations

import hmac
import os
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# An open network transaction older than this is "stuck" (the admin's filter says the same).
STUCK_AFTER = timedelta(hours=1)
POLL_FUNC = "ledger.tasks.poll_all_currencies"


def _gauge(name, doc, labels):
    return GaugeMetricFamily(name, doc, labels=labels)


def network_transaction_metrics(now):
    from ledger.models import Currency
    from ledger.models import NetworkTransaction as NT

    codes = dict(Currency.objects.values_list("id", "code"))
    by_state = _gauge(
        "cryptoadmin_network_transactions",
        "Network transactions by currency, type and state.",
        ["currency", "type", "state"],
    )
    stuck = _gauge(
        "cryptoadmin_network_transactions_stuck",
        f"Open network transactions opened more than {STUCK_AFTER} ago.",
        ["currency", "type"],
    )
    flagged = _gauge(
        "cryptoadmin_network_transactions_flagged",
        "Network transactions flagged for an operator and not closed by hand.",
        ["currency", "type"],
    )
    counts = {
        (r["currency_id"], r["type"], r["state"]): r
        for r in NT.objects.values("currency_id", "type", "state").annotate(
            n=Count("id"),
            stuck=Count("id", filter=Q(state=NT.State.OPEN, opened_at__lt=now - STUCK_AFTER)),
            # Closed by hand: a person has dealt with it, even if the flag stays.
            flagged=Count("id", filter=Q(flagged=True) & ~Q(state=NT.State.CLOSED_BY_HAND)),
        )
    }
    # Every state of the model's choices, zero-filled: a state added later appears by itself.
    for currency_id, code in codes.items():
        for type_ in NT.Type.values:
            rows = [counts.get((currency_id, type_, state), {}) for state in NT.State.values]
            for state, row in zip(NT.State.values, rows, strict=True):
                by_state.add_metric([code, type_, state], row.get("n", 0))
            stuck.add_metric([code, type_], sum(r.get("stuck", 0) for r in rows))
            flagged.add_metric([code, type_], sum(r.get("flagged", 0) for r in rows))
    return [by_state, stuck, flagged]


def outgoing_metrics():
    from broadcasts.models import OutgoingTransaction as OT
    from broadcasts.selections import interrupted_broadcasts
    from ledger.models import Currency, Wallet

    codes = dict(Currency.objects.values_list("id", "code"))
    count = _gauge(
        "cryptoadmin_outgoing_transactions",
        "Outgoing transactions by currency and state.",
        ["currency", "state"],
    )
    total = _gauge(
        "cryptoadmin_outgoing_amount_units",
        "Sum of outgoing transactions' amounts by currency and state, in base units (satoshis).",
        ["currency", "state"],
    )
    rows = {
        (r["currency_id"], r["state"]): r
        for r in OT.objects.values("currency_id", "state").annotate(
            n=Count("id"), total=Sum("amount")
        )
    }
    for currency_id, code in codes.items():
        for state in (
            OT.State.values
        ):  # queued, awaiting approval, needs attention... as the model defines them
            row = rows.get((currency_id, state), {})
            count.add_metric([code, state], row.get("n", 0))
            total.add_metric([code, state], row.get("total") or 0)
    interrupted = _gauge(
        "cryptoadmin_broadcasts_interrupted",
        "Broadcasts opened and never finished, with no broadcaster working on them.",
        ["currency", "wallet"],
    )
    per_wallet = dict(interrupted_broadcasts().values_list("wallet_id").annotate(n=Count("id")))
    for wallet in Wallet.objects.select_related("currency"):
        interrupted.add_metric([wallet.currency.code, wallet.name], per_wallet.get(wallet.pk, 0))
    return [count, total, interrupted]


def node_metrics():
    from ledger.models import Wallet
    from ops.health import probe_nodes

    up = _gauge(
        "cryptoadmin_node_up",
        "1 when the wallet's node answered this scrape.",
        ["currency", "wallet"],
    )
    height = _gauge(
        "cryptoadmin_node_block_height",
        "Block height the wallet's node reports.",
        ["currency", "wallet"],
    )
    currencies = dict(Wallet.objects.active().values_list("name", "currency__code"))
    for name, status in probe_nodes()["wallets"].items():
        labels = [currencies.get(name, ""), name]
        up.add_metric(labels, 1 if status["ok"] else 0)
        if status["ok"]:
            height.add_metric(labels, status["block_height"])
    return [up, height]


def scheduler_metrics(now):
    from django_q.models import Schedule, Task

    schedules = list(Schedule.objects.order_by("name"))
    funcs = {s.func for s in schedules}
    last_ok = dict(
        Task.objects.filter(func__in=funcs, success=True)
        .values_list("func")
        .annotate(t=Max("stopped"))
    )
    age = _gauge(
        "cryptoadmin_schedule_last_success_age_seconds",
        "Seconds since the schedule's task last succeeded (absent: never).",
        ["schedule"],
    )
    for s in schedules:
        if last_ok.get(s.func):
            age.add_metric([s.name], (now - last_ok[s.func]).total_seconds())
    cycle = _gauge(
        "cryptoadmin_poll_cycle_seconds",
        "Duration of the last successful confirmation poll cycle.",
        [],
    )
    last = (
        Task.objects.filter(func=POLL_FUNC, success=True)
        .order_by("-stopped")
        .values("started", "stopped")
        .first()
    )
    if last:
        cycle.add_metric([], (last["stopped"] - last["started"]).total_seconds())
    return [age, cycle]


def balance_cache_metrics():
    from balances.cache import existing_cache

    cache = existing_cache()
    stats = cache.stats() if cache else {"hits": 0, "misses": 0, "loads": 0, "users_cached": 0}
    pid = str(os.getpid())
    out = []
    for key, doc in (
        ("hits", "Balance reads served from memory."),
        ("misses", "Balance reads that found no entry."),
        ("loads", "Users' balances loaded from the database."),
    ):
        family = CounterMetricFamily(
            f"cryptoadmin_balance_cache_{key}", f"{doc} This web worker only.", labels=["pid"]
        )
        family.add_metric([pid], stats[key])
        out.append(family)
    users = _gauge(
        "cryptoadmin_balance_cache_users", "Users whose balances this web worker holds.", ["pid"]
    )
    users.add_metric([pid], stats["users_cached"])
    return out + [users]


def webhook_metrics(now):
    from events.metrics import metrics

    return metrics(now)


class DatabaseCollector:
    def collect(self):
        now = timezone.now()
        yield from network_transaction_metrics(now)
        yield from outgoing_metrics()
        yield from node_metrics()
        yield from scheduler_metrics(now)
        yield from balance_cache_metrics()
        yield from webhook_metrics(now)


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)


def _token_ok(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), token.encode())


def _staff_session_ok(request) -> bool:
    from ledger.actors import signed_in_staff

    return signed_in_staff(request.user)


@never_cache
@require_GET
def metrics_view(request):
    if not (_token_ok(request) or _staff_session_ok(request)):
        status = 403 if request.user.is_authenticated else 401
        response = HttpResponse(
            "metrics need a staff session or the METRICS_TOKEN bearer token\n",
            status=status,
            content_type="text/plain",
        )
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
