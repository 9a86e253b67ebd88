"""/health: JSON for monitors. 200 when all is well, 503 otherwise. No secrets in it.

Anyone gets `{"ok": bool}` and the status code, its nodes part read from what the scheduler's
last probe recorded (no node is called for an anonymous caller); the sections (database, nodes,
scheduler, what apps add) go to a staff session signed in with every factor required or a
caller with `Authorization: Bearer <HEALTH_TOKEN>`. Their node probes are cached for
HEALTH_NODE_CACHE_SECONDS, so hits cost the nodes (and block.io's rate limit) at most one probe
per wallet per period and web worker, however many arrive.

Apps add checks in `<app>/health.py` as `checks() -> {name: {"ok": bool, ...}}`.
"""

import hmac
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from cryptoadmin.registry import collect


def database():
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {
        "ok": True,
        "vendor": connection.vendor,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
    }


def node_status(wallet, backend):
    """Reachability, height and latency of one wallet's node; the error names no secret."""
    started = time.monotonic()
    height = backend.block_height()
    return {
        "ok": True,
        "wallet": wallet.name,
        "block_height": height,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
    }


def node_failure(wallet, exc):
    # A health check reports, it never raises: whatever failed, only its class is shown.
    return {"ok": False, "wallet": wallet.name, "error": type(exc).__name__}


NODES_CACHE_KEY = "cryptoadmin:health:nodes"
_probe_lock = (
    threading.Lock()
)  # one probe at a time in this process; the others wait for its answer


def nodes():
    """The probe of every enabled wallet's node, shared for HEALTH_NODE_CACHE_SECONDS."""
    seconds = settings.HEALTH_NODE_CACHE_SECONDS
    if seconds <= 0:
        return probe_nodes()
    cached = cache.get(NODES_CACHE_KEY)
    if cached is not None:
        return cached
    with _probe_lock:
        cached = cache.get(NODES_CACHE_KEY)
        if cached is None:
            cached = probe_nodes()
            cache.set(NODES_CACHE_KEY, cached, seconds)
    return cached


def probe_nodes():
    from ledger.models import Wallet
    from ledger.probe import probe_wallets

    results = probe_wallets(
        Wallet.objects.active().select_related("currency"),
        node_status,
        timeout=settings.HEALTH_NODE_TIMEOUT,
        on_error=node_failure,
    )
    return {"ok": all(r["ok"] for r in results), "wallets": {r["wallet"]: r for r in results}}


def scheduler():
    from django_q.models import Schedule, Task

    schedules = list(Schedule.objects.all())
    last = Task.objects.order_by("-stopped").values("stopped", "success", "name").first()
    status = {
        "schedules": len(schedules),
        "last_task_at": last["stopped"].isoformat() if last else None,
    }
    if not schedules:
        return {"ok": True, **status}
    now = timezone.now()
    overdue = [
        s.name
        for s in schedules
        if s.next_run and s.minutes and now - s.next_run > timedelta(minutes=3 * s.minutes)
    ]
    shortest = min((s.minutes for s in schedules if s.minutes), default=60)
    # Nothing ran yet (a fresh start): well while no schedule is late; after that, a task must
    # have finished within three of the shortest intervals.
    fresh = last is None or now - last["stopped"] <= timedelta(minutes=3 * shortest)
    return {"ok": fresh and not overdue, "overdue": overdue, **status}


def may_see_details(request) -> bool:
    from ledger.actors import signed_in_staff

    if signed_in_staff(getattr(request, "user", None)):
        return True
    token = settings.HEALTH_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


def recorded_nodes():
    """The nodes as the scheduler's last probe recorded them (ops.alerts, every minute): an
    anonymous caller never makes the server call a node."""
    from .alerts import NODE_DOWN
    from .models import Alert

    down = Alert.objects.filter(kind=NODE_DOWN, resolved_at__isnull=True)
    return {"ok": not down.exists()}


@never_cache
@require_GET
def health(request):
    details = may_see_details(request)
    body = {"database": database()}
    if body["database"]["ok"]:
        body["nodes"] = nodes() if details else recorded_nodes()
        body["scheduler"] = scheduler()
        for extra in collect("health", "checks"):
            body.update(extra)
    ok = all(section["ok"] for section in body.values())
    status = 200 if ok else 503
    if not details:
        return JsonResponse({"ok": ok}, status=status)
    body["ok"] = ok
    return JsonResponse(body, status=status)
