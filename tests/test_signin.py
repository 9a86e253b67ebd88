"""Staff sign in with a password and a TOTP second factor (issue 13, point 3).

Written as the attacker acts: through the real login page with the test client, holding a
staff user's password (phished, reused) but not their phone."""

import base64
import re
import time

import pytest
from django.core.management import call_command
from django.test import override_settings
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.support import grant, totp_device

pytestmark = pytest.mark.django_db


def _login(client, username, password, code="", ip="10.9.0.1"):
    return client.post(
        "/admin/login/",
        {"username": username, "password": password, "otp_token": code, "next": "/admin/"},
        REMOTE_ADDR=ip,
    )


def _code(device):
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def test_it_refuses_a_password_without_the_code_of_an_enrolled_user(client, operator):
    totp_device(operator)
    response = _login(client, "operator", "pw-operator")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert "current code from your authenticator" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_it_refuses_a_wrong_code_and_counts_it_as_a_failed_sign_in(client, operator):
    device, code = totp_device(operator)
    wrong = f"{(int(code()) + 1) % 1_000_000:06d}"
    with override_settings(AXES_FAILURE_LIMIT=3):
        assert _login(client, "operator", "pw-operator", wrong).status_code == 200
        assert _login(client, "operator", "pw-operator", wrong).status_code == 200
        # Guessing codes with the right password locks out like guessing passwords.
        assert _login(client, "operator", "pw-operator", wrong).status_code == 429
        assert _login(client, "operator", "pw-operator", code()).status_code == 429
    assert "_auth_user_id" not in client.session
    # From other addresses, the device's own throttle (django-otp: waits doubling from 1 s per
    # failure) and the username-wide limit bound the guesses.
    device.refresh_from_db()
    assert device.throttling_failure_count >= 1


def test_it_signs_in_with_password_and_current_code(client, operator):
    device, code = totp_device(operator)
    response = _login(client, "operator", "pw-operator", code())
    assert response.status_code == 302, response.content.decode()[:2000]
    assert client.session["_auth_user_id"] == str(operator.pk)
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/admin/").status_code == 200


def test_it_holds_a_staff_user_without_a_device_on_the_enrolment_page(client, operator):
    response = _login(client, "operator", "pw-operator")
    assert response.status_code == 302
    for path in (
        "/admin/",
        "/admin/ledger/wallet/",
        "/admin/auth/user/",
        "/admin/balances/apitoken/add/",
    ):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/admin/second-factor/"), (
            path,
            response["Location"],
        )
    page = client.get("/admin/second-factor/").content.decode()
    # The QR code, drawn on the server as SVG; nothing from a CDN.
    qr = re.search(r'<img src="data:image/svg\+xml;base64,([^"]+)"', page)
    assert qr and b"<svg" in base64.b64decode(qr.group(1))
    assert not re.search(r"""(src|href)=["']https?://""", page)


def test_it_enrols_an_authenticator_and_hands_out_recovery_codes_once(client, operator):
    _login(client, "operator", "pw-operator")
    client.get("/admin/second-factor/")
    device = TOTPDevice.objects.get(user=operator, confirmed=False)
    wrong = client.post(
        "/admin/second-factor/", {"code": f"{(int(_code(device)) + 1) % 1_000_000:06d}"}
    )
    assert "does not match" in wrong.content.decode()
    assert client.get("/admin/").status_code == 302
    time.sleep(1.1)  # django-otp refuses any code for 1 s after a wrong one (doubling each time)
    response = client.post("/admin/second-factor/", {"code": _code(device), "next": "/admin/"})
    codes = re.findall(r"<li><code>([^<]+)</code></li>", response.content.decode())
    assert len(codes) == 10
    assert client.get("/admin/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    # A recovery code signs in once, and only once.
    client.logout()
    assert _login(client, "operator", "pw-operator", codes[0]).status_code == 302
    client.logout()
    assert _login(client, "operator", "pw-operator", codes[0]).status_code == 200
    assert "_auth_user_id" not in client.session


def test_it_does_not_let_a_password_only_session_enrol_a_second_device(client, operator):
    totp_device(operator)
    client.force_login(operator, second_factor=False)  # e.g. a session from before enrolment
    response = client.get("/admin/second-factor/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert "_auth_user_id" not in client.session
    assert TOTPDevice.objects.filter(user=operator).count() == 1


def test_it_refuses_graphql_to_a_staff_session_without_the_second_factor(client, viewer):
    grant(viewer, "balances.view_user_balances")
    _login(client, "viewer", "pw-viewer")  # no device yet: signed in with the password only
    response = client.post(
        "/graphql", {"query": '{ user(id: "u-1") { id } }'}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "data" not in response.json()


def test_it_resets_a_user_s_devices_from_the_command_line(client, operator, capsys):
    totp_device(operator)
    StaticDevice.objects.create(user=operator, name="recovery codes", confirmed=True)
    call_command("reset_second_factor", "operator")
    assert "removed 2 second-factor device(s) of operator" in capsys.readouterr().out
    assert not TOTPDevice.objects.filter(user=operator).exists()
    # The password alone now leads to the enrolment page, and nowhere else.
    assert _login(client, "operator", "pw-operator").status_code == 302
    assert client.get("/admin/")["Location"].startswith("/admin/second-factor/")


@override_settings(OTP_REQUIRED=False)
def test_it_lets_staff_in_with_a_password_when_otp_is_not_required(client, operator):
    assert _login(client, "operator", "pw-operator").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_it_replaces_all_recovery_codes_for_a_signed_in_user(client, operator):
    from cryptoadmin.signin.services import issue_recovery_codes

    device, code = totp_device(operator)
    old = issue_recovery_codes(operator)
    assert _login(client, "operator", "pw-operator", code()).status_code == 302
    response = client.post("/admin/second-factor/", {"new_recovery_codes": "1"})
    new = re.findall(r"<li><code>([^<]+)</code></li>", response.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    client.logout()
    assert (
        _login(client, "operator", "pw-operator", old[0]).status_code == 200
    )  # old codes are gone
    time.sleep(1.1)  # the wrong code throttles every device of the user for 1 s
    assert _login(client, "operator", "pw-operator", new[0]).status_code == 302


def test_it_never_shows_an_authenticator_key_in_the_admin(client, superuser, operator):
    device, _ = totp_device(operator)
    client.force_login(superuser)
    page = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    assert page.status_code == 200
    assert device.key not in page.content.decode()
    assert "otpauth://" not in page.content.decode()
