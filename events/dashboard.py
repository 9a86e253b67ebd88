"""The banner on every admin page while a webhook endpoint has been failing too long."""

from django.conf import settings
from django.urls import reverse

from cryptoadmin.words import count

from .failing import failing_endpoints


def alerts(request):
    if not request.user.has_perm("events.view_webhookendpoint"):
        return []
    failing = failing_endpoints()
    if not failing:
        return []
    urls = ", ".join(e.url for e in failing[:3]) + ("…" if len(failing) > 3 else "")
    return [
        {
            "level": "error",
            "message": f"{count(len(failing), 'webhook endpoint')} failing for "
            f"{settings.WEBHOOK_ALERT_AFTER_HOURS} hours or more: {urls}. Events wait for them.",
            "url": reverse("admin:events_webhookendpoint_changelist") + "?enabled__exact=1",
        }
    ]
