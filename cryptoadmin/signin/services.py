"""Second-factor devices of a staff user: a TOTP authenticator and recovery codes.

TOTP devices come from django_otp.plugins.otp_totp, recovery codes are a django-otp static
device named RECOVERY whose tokens are each good once."""

import base64
import io

from django.conf import settings
from django.db import transaction
from django_otp import devices_for_user
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.qr import write_qrcode_image

AUTHENTICATOR = "authenticator"
RECOVERY = "recovery codes"


def has_second_factor(user) -> bool:
    return any(True for _ in devices_for_user(user, confirmed=True))


def pending_authenticator(user) -> TOTPDevice:
    """The unconfirmed TOTP device being enrolled (the same one until it is confirmed, so the QR
    code does not change under the user's feet)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR, confirmed=False)


def qr_data_url(device: TOTPDevice) -> str:
    """The device's otpauth:// URL as an SVG QR code drawn here (no CDN, no image library), in a
    data: URL for an <img>: the SVG uses XML namespace prefixes, which HTML does not render
    inline."""
    out = io.BytesIO()
    write_qrcode_image(device.config_url, out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


def confirm_authenticator(device_id: int, code: str) -> tuple[TOTPDevice, list[str]] | None:
    """Confirm the pending authenticator with a code it produced, and issue fresh recovery codes
    (returned once, never shown again). None when the code is wrong."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device_id)
        if device.confirmed or not device.verify_token(code.replace(" ", "")):
            return None
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        return device, issue_recovery_codes(device.user)


def issue_recovery_codes(user) -> list[str]:
    with transaction.atomic():
        StaticDevice.objects.filter(user=user, name=RECOVERY).delete()
        recovery = StaticDevice.objects.create(user=user, name=RECOVERY, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(settings.OTP_RECOVERY_CODES)]
        StaticToken.objects.bulk_create(
            [StaticToken(device=recovery, token=code) for code in codes]
        )
    return codes


def reset_devices(user) -> int:
    """Remove every second-factor device of the user; they enrol again at their next sign-in."""
    with transaction.atomic():
        removed = TOTPDevice.objects.filter(user=user).delete()[1].get("otp_totp.TOTPDevice", 0)
        removed += (
            StaticDevice.objects.filter(user=user).delete()[1].get("otp_static.StaticDevice", 0)
        )
    return removed
