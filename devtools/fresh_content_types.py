"""For a test server that outlives the suite's database flushes (tests/test_api_server.py runs
one gunicorn for a whole module): a flush recreates the content types under new ids, and a
process that cached the old ones would write history and audit rows pointing at no row. This
middleware forgets the cache before every request; test settings add it only when
FRESH_CONTENT_TYPES is set."""

from django.contrib.contenttypes.models import ContentType


class FreshContentTypesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ContentType.objects.clear_cache()
        return self.get_response(request)
