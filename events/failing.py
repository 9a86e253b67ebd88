"""Endpoints failing for longer than WEBHOOK_ALERT_AFTER_HOURS: an alert (ops/alerts.py) and a
banner on every admin page until a delivery succeeds."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from .models import WebhookEndpoint


def failing_endpoints(now=None):
    now = now or timezone.now()
    since = now - timedelta(hours=settings.WEBHOOK_ALERT_AFTER_HOURS)
    return list(
        WebhookEndpoint.objects.filter(enabled=True, failing_since__lte=since).annotate(
            pending_count=Count("deliveries", filter=Q(deliveries__state="pending"))
        )
    )
