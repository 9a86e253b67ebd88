"""The client's address, for the login lock-out and the audit log.

REMOTE_ADDR, unless TRUSTED_PROXY_COUNT proxies stand in front of us: then each of them appended
the address it received from to X-Forwarded-For, and the client is the entry that many places
from the right. Entries further left were written by the client and prove nothing, so they are
never read: an attacker cannot pick the address their failures are counted under."""

import ipaddress

from django.conf import settings


def _valid(address):
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def client_ip(request):
    remote = request.META.get("REMOTE_ADDR") or None
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    hops = [
        hop.strip()
        for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if hop.strip()
    ]
    if len(hops) < count:
        # Not the chain the configured proxies write: count it under the proxy's own address.
        return remote
    return _valid(hops[-count]) or remote
