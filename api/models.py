"""What the API keeps of its own: the idempotency keys of money requests and their answers."""

from django.db import models
from django.utils import timezone

from balances.models import ApiToken


class IdempotencyKey(models.Model):
    """A money request's key and its first answer, committed in the transaction of the money
    it moved: a key exists exactly when its money moved. Keys are per token."""

    token = models.ForeignKey(ApiToken, on_delete=models.PROTECT, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of the method, path and canonical JSON body: the same key with another request
    # is refused instead of answered with the first one's result.
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(default=0, help_text="0 while being answered")
    # The answer's exact bytes (JSON text): a replay is byte for byte the first answer.
    response = models.TextField(blank=True)
    object_id = models.CharField(max_length=64, blank=True, help_text="What the request made")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "key"], name="idempotency_key_per_token")
        ]

    def __str__(self):
        return f"{self.key} ({self.status})"
