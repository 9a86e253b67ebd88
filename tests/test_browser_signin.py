"""Signing in with the second factor, in a real browser against the real server (issue 13, point
3)."""

import base64

import pytest
from django_otp.oath import TOTP

from tests.browser import authenticator, login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _password_page(page, live_server, username, password, code=""):
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.fill("#id_otp_token", code)
    page.click("input[type=submit]")


def test_it_refuses_the_password_alone_for_an_enrolled_user(page, live_server, operator):
    authenticator("operator")
    _password_page(page, live_server, "operator", "pw-operator")
    assert "current code from your authenticator" in page.inner_text(".errornote")
    page.goto(f"{live_server.url}/admin/")
    assert "/admin/login/" in page.url
    login(page, live_server, "operator", "pw-operator")  # with the code: in
    assert page.locator("#site-name").inner_text() == "cryptoadmin"


def test_it_enrols_a_new_staff_user_from_the_qr_page(page, live_server, operator):
    _password_page(page, live_server, "operator", "pw-operator")
    page.wait_for_url(f"{live_server.url}/admin/second-factor/**")
    assert page.eval_on_selector("#otp-qr img", "img => img.complete && img.naturalWidth > 0")
    screenshot(page, "second-factor-enrol.png")
    # The phone: the key typed by hand from the page.
    secret = page.inner_text("#otp-secret").replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    page.fill("#id_code", f"{TOTP(key).token():06d}")
    page.click("#enrol-form input[type=submit]")
    assert page.locator("#recovery-codes li").count() == 10
    page.click("#continue")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.locator("#dashboard").count() == 1


def test_it_shows_the_lockout_page_after_repeated_failures(page, live_server, operator, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        _password_page(page, live_server, "operator", "wrong")
    assert "Too many failed sign-ins" in page.inner_text("#content-main")
    assert "manage.py axes_reset_username operator" in page.inner_text("#content-main")
    screenshot(page, "login-locked-out.png")
    _password_page(page, live_server, "operator", "pw-operator", "000000")
    assert "Too many failed sign-ins" in page.inner_text("#content-main")
