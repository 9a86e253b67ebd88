"""An operator's morning, in a real browser against the real server."""

import pytest

from tests.browser import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_shows_the_dashboard_to_a_logged_in_operator(page, live_server, superuser):
    login(page, live_server, "root", "pw-root")
    assert page.locator("#site-name").inner_text() == "cryptoadmin"
    assert page.locator("#dashboard").count() == 1
    screenshot(page, "dashboard.png")
