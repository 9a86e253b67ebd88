from django.db import models
from django.utils import timezone


class LoginFailure(models.Model):
    """One failed admin login; recent rows per address or username throttle the login page.

    In the database, not a per-process cache, so every web worker sees the same count."""

    ip = models.GenericIPAddressField(null=True)
    username = models.CharField(max_length=150, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["ip", "at"]), models.Index(fields=["username", "at"])]
