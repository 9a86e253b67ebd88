from django.db import models
from django.db.models import Q
from django.utils import timezone


class Alert(models.Model):
    """One event that needs a person (an interrupted broadcast, a node down...), and what was
    sent about it when. Shared by every scheduler cluster: a notification is claimed with a
    conditional UPDATE on `last_sent_at`, so two clusters never both send it."""

    key = models.CharField(
        max_length=200, unique=True, help_text="kind:subject, e.g. broadcast.interrupted:12"
    )
    kind = models.CharField(max_length=64)
    title = models.CharField(max_length=255)
    detail = models.TextField(blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    sent_count = models.PositiveIntegerField(default=0)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-first_seen_at"]
        indexes = [
            models.Index(
                fields=["resolved_at"],
                name="ops_alert_open_idx",
                condition=Q(resolved_at__isnull=True),
            )
        ]

    def __str__(self):
        return self.title
