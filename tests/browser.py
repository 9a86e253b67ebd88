"""Playwright driving Debian's chromium (no browser download) against the real server."""

import os
import tempfile

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DOCS_SCREENSHOTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "screenshots")


def screenshots_dir(environ=os.environ):
    """Where the browser tests save their pictures: a temporary folder, so that running the
    suite leaves the tree clean; `make screenshots` sets SCREENSHOTS_DIR to refresh the docs'."""
    return environ.get("SCREENSHOTS_DIR") or os.path.join(
        tempfile.gettempdir(), "cryptoadmin-screenshots"
    )


@pytest.fixture(scope="session")
def browser():
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls from the
    # test body are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def login(page, live_server, username, password):
    """Sign in through the real login page with the password and the current code of the user's
    authenticator (a TOTP device is given to the user if they have none): the test settings
    require the second factor, as production does."""
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.fill("#id_otp_token", current_code(authenticator(username)))
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def authenticator(username):
    from django.contrib.auth import get_user_model
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = get_user_model().objects.get(username=username)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def current_code(device):
    """What the user's phone shows now (RFC 6238, django-otp's own TOTP function)."""
    from django_otp.oath import totp

    device.refresh_from_db()
    code = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{code:0{device.digits}d}"


def screenshot(page, name):
    folder = screenshots_dir()
    os.makedirs(folder, exist_ok=True)
    page.screenshot(path=os.path.join(folder, name), full_page=True)
