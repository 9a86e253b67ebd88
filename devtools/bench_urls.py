"""The project's URLs plus /bench/trivial: a view that does nothing, behind the same middleware."""

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from cryptoadmin.urls import urlpatterns as project_urlpatterns


@csrf_exempt
def trivial(request):
    return HttpResponse(b'{"ok":true}', content_type="application/json")


urlpatterns = [*project_urlpatterns, path("bench/trivial", trivial)]
