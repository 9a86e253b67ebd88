"""The outbox (one row per event, written in the transaction of its change), the per-object
sequence counters, and the webhook endpoints with their deliveries and attempts."""

import secrets
import uuid
from base64 import b64encode

from django.conf import settings
from django.db import models
from django.db.models import Q

from ledger.outbox import TYPES

SECRET_PREFIX = "whsec_"


class Event(models.Model):
    # `id` orders the outbox; `uid` is the event's public id (webhook-id, the feed's "id").
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=64, choices=[(t, t) for t in TYPES])
    created_at = models.DateTimeField(db_index=True)
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64)
    sequence = models.PositiveIntegerField()
    data = models.JSONField(default=dict)
    # PostgreSQL: the writing transaction's id (pg_current_xact_id). The feed serves a row only
    # once every transaction below it has ended, so a late commit is never skipped. 0 on SQLite,
    # whose writers are serialised (id order is commit order).
    xid = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["object_type", "object_id", "sequence"], name="event_sequence_per_object"
            )
        ]
        indexes = [models.Index(fields=["xid", "id"], name="event_feed_order")]
        permissions = [("replay_event", "Can redeliver and replay events to webhook endpoints")]

    def __str__(self):
        return f"{self.type} {self.object_type}:{self.object_id} #{self.sequence}"

    def payload(self) -> dict:
        """What the feed returns and a webhook's body carries (Standard Webhooks' shape)."""
        return {
            "id": str(self.uid),
            "type": self.type,
            "timestamp": self.created_at.isoformat().replace("+00:00", "Z"),
            "object": {"type": self.object_type, "id": self.object_id},
            "sequence": self.sequence,
            "data": self.data,
        }


class ObjectSequence(models.Model):
    """The last sequence number given to an object's events; the upsert that raises it also
    serialises two transactions emitting for one object."""

    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64)
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["object_type", "object_id"], name="one_sequence_per_object"
            )
        ]

    def __str__(self):
        return f"{self.object_type}:{self.object_id} #{self.last}"


def new_secret() -> str:
    return SECRET_PREFIX + b64encode(secrets.token_bytes(24)).decode()


class WebhookEndpoint(models.Model):
    url = models.URLField(max_length=500)
    # Empty: every type.
    event_types = models.JSONField(default=list, blank=True)
    secret = models.CharField(max_length=100, default=new_secret, editable=False)
    # During a rotation the old secret signs too, until it expires.
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    # First failure since the last success; cleared by a 2xx.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, editable=False
    )

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.url

    def wants(self, type_: str) -> bool:
        return not self.event_types or type_ in self.event_types


class DeliveryQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(state=Delivery.State.PENDING)

    def due(self, now):
        """Pending, due, not held by a live dispatcher's lease."""
        return self.pending().filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), next_attempt_at__lte=now
        )


class Delivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # retries ran out, or the endpoint was disabled

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="deliveries")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    # A dispatcher's claim: its token and its lease; another claims the row once the lease ends.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim = models.UUIDField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(
                fields=["endpoint", "next_attempt_at"],
                condition=Q(state="pending"),
                name="delivery_pending",
            )
        ]

    def __str__(self):
        return f"{self.event} to {self.endpoint}"


class Attempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_set")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status = models.PositiveSmallIntegerField(null=True, blank=True)  # None: no HTTP answer
    # "ok", "http_error", "timeout", "refused", "redirect", "host_not_allowed", "error"
    outcome = models.CharField(max_length=32)
    response_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.outcome} {self.status or ''}".strip()


class DepositReport(models.Model):
    """What the events last said about a deposit (network transaction): the confirmations and
    state reported, so each change is emitted once; final once the deposit left the polled
    states and its last figures were reported."""

    network_transaction = models.OneToOneField(
        "ledger.NetworkTransaction", on_delete=models.CASCADE, related_name="event_report"
    )
    confirmations = models.IntegerField(default=-1)
    state = models.CharField(max_length=16, blank=True)
    credited = models.BooleanField(default=False)
    final = models.BooleanField(default=False)

    def __str__(self):
        return f"deposit {self.network_transaction_id}: {self.confirmations} ({self.state})"
