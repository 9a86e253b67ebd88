"""Idempotency keys as Stripe defines them, for every money request of the API.

The request's `Idempotency-Key` (1-255 printable characters, per token) is inserted first in
the request's transaction, the money moves in that transaction, and the answer is stored
in the key's row before it commits: a crash leaves either the key with its money and answer,
or neither. Then:
- the same key with the same request returns the stored answer (status and body) without
  running anything again (header `Idempotent-Replayed: true`);
- the same key with another request (method, path or body) gets 422 `idempotency_key_reused`;
- while a request with the key is still running, the next waits for it (the unique index
  makes it) and returns its answer, or gets 409 `request_in_flight` after
  IDEMPOTENCY_WAIT_MS on PostgreSQL;
- a refused request (4xx) rolls back with its key: retrying the key runs it again.
Keys are kept IDEMPOTENCY_KEY_HOURS (at least 24), then purged by a schedule."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, OperationalError, connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from ninja import Header

from cryptoadmin import faults

from .errors import ApiError
from .models import IdempotencyKey

HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"^[\x20-\x7e]{1,255}$")
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's lock_timeout error
# The header as a view parameter: documented in the OpenAPI document, required.
KEY_PARAM = Header(
    ..., alias=HEADER, description="1-255 printable characters, new for each new request"
)


def require_key(request) -> str:
    key = request.headers.get(HEADER)
    if key is None:
        raise ApiError(400, "idempotency_key_required", f"send an {HEADER} header", HEADER)
    if not KEY_RE.match(key) or not key.strip():
        raise ApiError(400, "invalid_idempotency_key", "use 1 to 255 printable characters", HEADER)
    return key


def fingerprint(request) -> str:
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        body = request.body.decode("utf-8", "replace")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{request.method}\n{request.path}\n{canonical}".encode()).hexdigest()


def once(request, run) -> HttpResponse:
    """Answer the request with `run() -> (status, body)` at most once per key."""
    key, token = require_key(request), request.api_token
    fp = fingerprint(request)
    found = IdempotencyKey.objects.filter(token=token, key=key).first()
    if found is not None:
        return _replay(found, fp)
    with transaction.atomic():
        record = _claim(token, key, fp)
        if record is None:
            return _replay(IdempotencyKey.objects.get(token=token, key=key), fp)
        status, body = run()
        record.status, record.response = status, json.dumps(body, cls=DjangoJSONEncoder)
        record.object_id = str(body.get("id", ""))[:64]
        record.save(update_fields=["status", "response", "object_id"])
        faults.point("api.idempotency.before_commit")
    faults.point("api.idempotency.after_commit")
    return _json(record.response, status)


def _json(text: str, status: int) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="application/json")


def _claim(token, key, fp) -> IdempotencyKey | None:
    """The key's row, inserted in this transaction; None when another request holds it."""
    postgres = connection.vendor == "postgresql"
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {int(settings.IDEMPOTENCY_WAIT_MS)}")
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(token=token, key=key, fingerprint=fp)
    except IntegrityError:
        return None
    except OperationalError as exc:
        if getattr(exc.__cause__, "pgcode", None) == LOCK_NOT_AVAILABLE:
            raise ApiError(
                409, "request_in_flight", f"a request with this {HEADER} is still running", HEADER
            ) from None
        raise
    finally:
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout TO DEFAULT")  # the session's own again


def _replay(found: IdempotencyKey, fp: str) -> HttpResponse:
    if found.fingerprint != fp:
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"this {HEADER} was used for another request; use a new key",
            HEADER,
        )
    response = _json(found.response, found.status)
    response["Idempotent-Replayed"] = "true"
    return response


def purge(now=None) -> int:
    """Forget keys older than IDEMPOTENCY_KEY_HOURS; returns how many."""
    hours = max(24, settings.IDEMPOTENCY_KEY_HOURS)
    cutoff = (now or timezone.now()) - timedelta(hours=hours)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
