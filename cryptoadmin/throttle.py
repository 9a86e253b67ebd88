"""Password-guessing protection for the admin login page."""
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.db.models import Q
from django.dispatch import receiver
from django.http import HttpResponse
from django.utils import timezone

from .models import LoginFailure


def client_ip(request):
    return request.META.get("REMOTE_ADDR") or None


def _window():
    return timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW)


def is_locked_out(ip, username) -> bool:
    recent = LoginFailure.objects.filter(at__gte=_window())
    by_ip = recent.filter(ip=ip).count() if ip else 0
    by_user = recent.filter(username=username).count() if username else 0
    return max(by_ip, by_user) >= settings.LOGIN_MAX_FAILURES


@receiver(user_login_failed)
def record_failure(sender, credentials, request=None, **kwargs):
    if request is None:
        return
    LoginFailure.objects.create(ip=client_ip(request), username=(credentials.get("username") or "")[:150])
    # Old rows are useless; trimming here keeps the table small without a job.
    LoginFailure.objects.filter(at__lt=timezone.now() - timedelta(days=1)).delete()


def throttled(login_view):
    def view(request, *args, **kwargs):
        if request.method == "POST" and is_locked_out(client_ip(request), request.POST.get("username", "")):
            minutes = settings.LOGIN_FAILURE_WINDOW // 60
            return HttpResponse(
                f"Too many failed logins from this address or for this user. Try again in {minutes} minutes.",
                status=429, content_type="text/plain",
            )
        return login_view(request, *args, **kwargs)

    return view


def clear_failures(ip=None, username=None):
    LoginFailure.objects.filter(Q(ip=ip) | Q(username=username)).delete()
