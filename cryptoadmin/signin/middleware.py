from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from .services import has_second_factor


class SecondFactorRequiredMiddleware:
    """While OTP_REQUIRED is on, a staff user in the admin who has not signed in with a second
    factor can do nothing but enrol one (or log out). /graphql checks its sessions itself
    (balances/auth.py): it answers JSON, not redirects."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.OTP_REQUIRED:
            refused = self._refuse(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    def _refuse(self, request):
        if not request.path.startswith(reverse("admin:index")):
            return None
        user = request.user
        if not (user.is_authenticated and user.is_staff) or user.is_verified():
            return None
        enrol = reverse("second-factor")
        if request.path in (
            enrol,
            reverse("admin:logout"),
            reverse("admin:login"),
            reverse("admin:jsi18n"),
        ):
            return None
        if has_second_factor(user):
            # A session without the code (signed in before enrolling elsewhere, or its device
            # was replaced): sign in again with the code.
            logout(request)
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        return redirect(f"{enrol}?{urlencode({'next': request.get_full_path()})}")
