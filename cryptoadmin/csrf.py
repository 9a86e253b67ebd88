"""The page a refused form POST shows (CSRF_FAILURE_VIEW): Django's reason, and the settings
that decide it named, so whoever installs the service sees what to set instead of a bare
"CSRF verification failed"."""

from django.conf import settings
from django.template.response import TemplateResponse


def failure(request, reason=""):
    origin = request.headers.get("Origin", "")
    context = {
        "reason": reason,
        "origin": origin,
        "trusted": settings.CSRF_TRUSTED_ORIGINS,
        "scheme": request.scheme,
        "behind_proxy": bool(settings.SECURE_PROXY_SSL_HEADER),
        "origin_untrusted": bool(origin) and origin not in settings.CSRF_TRUSTED_ORIGINS,
    }
    return TemplateResponse(request, "cryptoadmin/csrf_failure.html", context, status=403)
