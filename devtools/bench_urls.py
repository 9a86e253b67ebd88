"""The project's URLs plus /bench/trivial: a view that does nothing, behind the same middleware."""

from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def trivial(request):
    return HttpResponse(b'{"ok":true}', content_type="application/json")


# The project's URLconf by name (Django's include): devtools sits below the project's wiring.
urlpatterns = [path("bench/trivial", trivial), path("", include("cryptoadmin.urls"))]
