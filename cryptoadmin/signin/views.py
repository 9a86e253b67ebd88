from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import login as otp_login

from . import services


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code from the app",
        max_length=8,
        strip=True,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


def _next(request):
    url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return reverse("admin:index")


def enrol(request):
    """Enrol a TOTP authenticator: a QR code drawn here, a code to confirm it, then recovery
    codes shown once. Served through admin_view (a staff session is needed)."""
    user = request.user
    context = {
        **admin.site.each_context(request),
        "title": "Second factor",
        "next": _next(request),
        "otp_required": settings.OTP_REQUIRED,
    }
    if services.has_second_factor(user):
        if not user.is_verified():
            # Only a session that proved the current device may see or change anything here.
            logout(request)
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if request.method == "POST" and "new_recovery_codes" in request.POST:
            # The old codes stop working at once: for a user who used or exposed some.
            codes = services.issue_recovery_codes(user)
            return render(request, "cryptoadmin/recovery_codes.html", {**context, "codes": codes})
        return render(request, "cryptoadmin/second_factor_enrolled.html", context)
    device = services.pending_authenticator(user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        confirmed = services.confirm_authenticator(device.pk, form.cleaned_data["code"])
        if confirmed is None:
            form.add_error(
                "code", "That code does not match: check the app's clock and type the current code."
            )
        else:
            device, codes = confirmed
            otp_login(request, device)
            return render(request, "cryptoadmin/recovery_codes.html", {**context, "codes": codes})
    context.update(form=form, qr=services.qr_data_url(device), secret=_spaced(device.key))
    return render(request, "cryptoadmin/second_factor_enrol.html", context)


def _spaced(hex_key):
    import base64

    secret = base64.b32encode(bytes.fromhex(hex_key)).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def locked_out(request, original_response=None, credentials=None):
    """django-axes's lock-out page (AXES_LOCKOUT_CALLABLE), in the admin's look."""
    from axes.helpers import get_client_username, get_cool_off

    cool_off = get_cool_off(request)
    context = {
        **admin.site.each_context(request),
        "title": "Sign-in locked",
        "username": get_client_username(request, credentials) or "",
        "ip_address": getattr(request, "axes_ip_address", "") or "",
        "minutes": int(cool_off.total_seconds() // 60) if cool_off else None,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    return render(request, "cryptoadmin/lockout.html", context, status=429)
