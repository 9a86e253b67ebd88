"""Rate limits per API token (ninja's throttling): API_RATE_LIMIT requests per period for each
token, e.g. "6000/min"; empty means none. Counted in each web process's cache (Django's
default local-memory cache), so with N workers a token gets up to N times the figure."""

from django.conf import settings
from ninja.throttling import SimpleRateThrottle


class TokenRateThrottle(SimpleRateThrottle):
    scope = "api_token"

    def __init__(self):
        # The setting is read per request (tests and operators change it without a restart
        # of the import); ninja's constructor would read it once.
        self.rate, self.num_requests, self.duration = None, None, None

    def allow_request(self, request):
        rate = settings.API_RATE_LIMIT or None
        if rate != self.rate:
            self.rate = rate
            self.num_requests, self.duration = self.parse_rate(rate)
        return super().allow_request(request)

    def get_cache_key(self, request):
        token = getattr(request, "api_token", None)
        if self.rate is None or token is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": token.pk}
