"""The production server: `manage.py serve` (gunicorn + the django-q2 cluster) with DEBUG off
and a SECRET_KEY, behind a TLS proxy; the admin's CSS is served by whitenoise."""

import re

import pytest

from tests.prodserver import ProxiedBrowser, production_env, start_serve, stop
from tests.support import totp_device
from tests.test_demo_stop import MARKER, marked_processes

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_serves_the_admin_with_its_css_and_debug_off(child_env, tmp_path, django_user_model):
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    # Hashed as production hashes (the suite's settings use a fast hasher production does not
    # accept).
    user = django_user_model.objects.create(
        username="ops",
        is_staff=True,
        is_superuser=True,
        is_active=True,
        password=PBKDF2PasswordHasher().encode("a long production password 42", "salt1234"),
    )
    _, code = totp_device(user)
    env = production_env(child_env, tmp_path, **{MARKER: "serve-" + tmp_path.name})
    proc, base = start_serve(env, tmp_path / "serve.log", "--web-workers", "2")
    try:
        browser = ProxiedBrowser(base)
        # Behind the proxy, plain HTTP from outside is redirected to HTTPS.
        plain = ProxiedBrowser(base).get("/admin/login/", headers={"X-Forwarded-Proto": "http"})
        assert plain.status_code == 301 and plain.headers["Location"].startswith(
            "https://127.0.0.1:"
        )

        # The real admin login form: password and the authenticator's current code.
        browser.log_in("ops", "a long production password 42", code=code)
        home = browser.get("/admin/")
        assert home.status_code == 200 and "Back office" in home.text
        assert home.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+\.css)"', home.text)
        assert "/static/admin/css/base.css" in stylesheets
        for href in stylesheets:
            css = browser.get(href)
            assert css.status_code == 200, href
            assert css.headers["Content-Type"].startswith("text/css")
            assert len(css.content) > 100
        # DEBUG is off: an unknown page is a plain 404, not Django's debug page.
        missing = browser.get("/admin/no-such-page/")
        assert missing.status_code in (302, 404) and "Traceback" not in missing.text
        assert browser.get("/metrics").status_code == 200
        assert "stopped" not in (tmp_path / "serve.log").read_text()
    finally:
        stop(proc)
    log = (tmp_path / "serve.log").read_text()
    assert "stopped: web server, scheduler, event dispatcher" in log, log[-3000:]
    # gunicorn, the cluster and the event dispatcher all ran
    assert "Booting worker" in log and "running." in log and "delivering events" in log
    assert marked_processes("serve-" + tmp_path.name) == []


def test_it_refuses_sqlite(child_env, tmp_path):
    import subprocess

    from tests.support import PYTHON, REPO

    env = production_env(child_env, tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    result = subprocess.run(
        [PYTHON, "manage.py", "serve"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "serve runs on PostgreSQL" in result.stderr
