"""Webhook figures for /metrics (ops/metrics.py calls `metrics`): pending deliveries and the
oldest one's age per endpoint, deliveries by state, failed attempts."""

from django.db.models import Count, Min
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .models import Attempt, Delivery, WebhookEndpoint


def metrics(now):
    pending = GaugeMetricFamily(
        "cryptoadmin_webhook_pending",
        "Deliveries waiting to be sent, per endpoint.",
        labels=["endpoint"],
    )
    oldest = GaugeMetricFamily(
        "cryptoadmin_webhook_oldest_pending_age_seconds",
        "Age of the oldest waiting delivery's event, per endpoint (0: none waiting).",
        labels=["endpoint"],
    )
    by_state = GaugeMetricFamily(
        "cryptoadmin_webhook_deliveries",
        "Deliveries by endpoint and state.",
        labels=["endpoint", "state"],
    )
    failures = CounterMetricFamily(
        "cryptoadmin_webhook_delivery_failures",
        "Attempts that did not get a 2xx, per endpoint.",
        labels=["endpoint"],
    )
    rows, failed = _counts()
    for endpoint in WebhookEndpoint.objects.order_by("id"):
        label = [str(endpoint.pk)]
        waiting = rows.get((endpoint.pk, Delivery.State.PENDING), {})
        pending.add_metric(label, waiting.get("n", 0))
        first = waiting.get("first")
        oldest.add_metric(label, (now - first).total_seconds() if first else 0)
        for state in Delivery.State.values:
            by_state.add_metric(label + [state], rows.get((endpoint.pk, state), {}).get("n", 0))
        failures.add_metric(label, failed.get(endpoint.pk, 0))
    return [pending, oldest, by_state, failures]


def _counts():
    """Deliveries by (endpoint, state) with their oldest, and failed attempts per endpoint."""
    rows = {
        (r["endpoint_id"], r["state"]): r
        for r in Delivery.objects.values("endpoint_id", "state").annotate(
            n=Count("id"), first=Min("created_at")
        )
    }
    failed = dict(
        Attempt.objects.exclude(outcome="ok")
        .values_list("delivery__endpoint_id")
        .annotate(n=Count("id"))
    )
    return rows, failed
