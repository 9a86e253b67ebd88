"""The admin pages work under the Content-Security-Policy: a real browser touring them (the
sign-in, the second-factor QR page, the dashboard, lists, filters, forms with their widgets and
autocomplete) reports no violation."""

import pytest

from tests.browser import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Playwright's init scripts are not subject to the page's policy: this one records violations.
RECORD = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(
    `${e.violatedDirective} ${e.blockedURI || 'inline'} ${e.sourceFile}:${e.lineNumber}`));
"""
PAGES = [
    "/admin/",
    "/admin/ledger/transaction/?kind__exact=deposit",
    "/admin/ledger/networktransaction/",
    "/admin/ledger/wallet/",
    "/admin/ledger/wallet/add/",
    "/admin/ledger/wallet/import/",
    "/admin/broadcasts/outgoingtransaction/",
    "/admin/django_q/schedule/add/",
    "/admin/auditlog/logentry/",
    "/admin/second-factor/",
    "/api/v1/docs",  # Swagger UI, from ninja's own static files
]


def _violations(page):
    page.wait_for_load_state("load")
    return page.evaluate("window.__violations")


def test_it_shows_the_admin_under_its_policy_without_a_violation(
    page, live_server, superuser, operator, wallet
):
    page.add_init_script(RECORD)
    # A staff user without a second factor lands on the QR page after the password.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw-operator")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/second-factor/**")
    assert page.eval_on_selector("#otp-qr img", "img => img.complete && img.naturalWidth > 0")
    assert _violations(page) == []
    page.context.clear_cookies()
    login(page, live_server, "root", "pw-root")
    seen = {}
    for url in PAGES:
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 200, url
        assert "script-src 'self'" in response.headers["content-security-policy"]
        seen[url] = _violations(page)
    # The widgets ran: the calendar shortcut and the account search box were drawn by scripts.
    page.goto(f"{live_server.url}/admin/django_q/schedule/add/")
    assert page.locator(".datetimeshortcuts").count() >= 1
    page.goto(f"{live_server.url}/admin/ledger/wallet/import/")
    assert page.locator(".select2-container").count() >= 1
    page.goto(f"{live_server.url}/admin/ledger/wallet/add/")
    page.click("#test-connection")  # the project's own script, served from static files
    page.wait_for_function("document.getElementById('connection-result').textContent !== ''")
    page.goto(f"{live_server.url}/api/v1/docs")
    page.wait_for_selector(".swagger-ui .info")
    seen["widgets"] = _violations(page)
    assert {url: v for url, v in seen.items() if v} == {}
