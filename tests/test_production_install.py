"""The first production install as docs/operations.md describes it, from an empty PostgreSQL
database to an imported wallet and a credited deposit: the environment file, `deploy/manage`
(migrate, collectstatic, createsuperuser, update_confirmations), `make serve`, and the admin
over HTTP as the TLS proxy forwards it (sign-in and enrolment of the authenticator included).
Nothing is written to the database behind the server's back."""

import base64
import os
import re
import secrets
import subprocess
import time

import psycopg2
import pytest
import requests

from devtools.localservices import free_port
from tests.prodserver import ProxiedBrowser, stop
from tests.support import REPO, pay_from_outside, wait_until

PASSWORD = "a long production password for the first admin"


@pytest.fixture
def empty_database(postgres):
    name = f"install_{secrets.token_hex(4)}"
    admin = psycopg2.connect(postgres.url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield postgres.url_for(name)
    cursor = admin.cursor()
    cursor.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
    )
    cursor.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.close()


def _env_file(tmp_path, database_url, port):
    """The environment file of the docs' step 3 (behind the TLS proxy)."""
    path = tmp_path / "env"
    path.write_text(
        "\n".join(
            [
                "DEBUG=0",
                f"SECRET_KEY={secrets.token_urlsafe(50)}",
                f"DATABASE_URL={database_url}",
                "ALLOWED_HOSTS=127.0.0.1",
                f"CSRF_TRUSTED_ORIGINS=https://127.0.0.1:{port}",
                "BEHIND_TLS_PROXY=1",
                f"STATIC_ROOT={tmp_path / 'static'}",
                f"PORT={port}",
                "WEB_WORKERS=1",
                "Q_WORKERS=1",
                "NODE_HOSTS=127.0.0.1",
                "",
            ]
        )
    )
    return path


def _shell_env(env_file):
    """The operator's shell: no settings of the test suite, the environment file named."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    env.update(CRYPTOADMIN_ENV=str(env_file), PYTHONPATH=str(REPO))
    return env


def _manage(env, *args, extra=None):
    done = subprocess.run(
        ["deploy/manage", *args],
        cwd=REPO,
        env={**env, **(extra or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


def _make_serve(env, log_path, base):
    out = open(log_path, "w")
    proc = subprocess.Popen(
        ["make", "serve"],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def answers():
        if proc.poll() is not None:
            raise AssertionError(f"make serve exited: {log_path.read_text()[-3000:]}")
        try:
            # As the proxy forwards it (plain HTTP is redirected to an https nobody serves here).
            return requests.get(
                base + "/health",
                headers={"X-Forwarded-Proto": "https"},
                allow_redirects=False,
                timeout=5,
            ).status_code
        except requests.RequestException:
            return None

    try:
        wait_until(answers, timeout=120, what="make serve to answer")
    except BaseException:
        stop(proc)
        raise
    return proc


def _totp(secret: str) -> str:
    from django_otp.oath import totp

    key = base64.b32decode(secret.replace(" ", "") + "=" * (-len(secret.replace(" ", "")) % 8))
    return f"{totp(key, step=30, t0=0, digits=6):06d}"


def _sign_in_and_enrol(browser):
    form = browser.get("/admin/login/?next=/admin/")
    signed = browser.post(
        "/admin/login/?next=/admin/",
        {
            "username": "root",
            "password": PASSWORD,
            "otp_token": "",
            "next": "/admin/",
            "csrfmiddlewaretoken": browser.csrf_token(form.text),
        },
    )
    assert signed.status_code == 302, signed.text[:2000]
    enrol = browser.get("/admin/second-factor/")
    secret = re.search(r'id="otp-secret">([A-Z2-7 ]+)<', enrol.text).group(1)
    done = browser.post(
        "/admin/second-factor/",
        {"code": _totp(secret), "csrfmiddlewaretoken": browser.csrf_token(enrol.text)},
    )
    assert done.status_code == 200 and "recovery" in done.text.lower(), done.text[:2000]
    assert browser.get("/admin/").status_code == 200


def _post_form(browser, path, data, expect=302):
    page = browser.get(path)
    assert page.status_code == 200, (path, page.status_code)
    response = browser.post(path, {**data, "csrfmiddlewaretoken": browser.csrf_token(page.text)})
    assert response.status_code == expect, (path, response.status_code, response.text[-3000:])
    return response


def test_it_installs_from_an_empty_database_to_an_import_and_a_credited_deposit(
    empty_database, two_nodes, tmp_path
):
    ours, outside = two_nodes
    port = free_port()
    env = _shell_env(_env_file(tmp_path, empty_database, port))
    _manage(env, "migrate", "--noinput")
    _manage(env, "collectstatic", "--noinput")
    _manage(
        env,
        "createsuperuser",
        "--noinput",
        "--username",
        "root",
        "--email",
        "root@example.com",
        extra={"DJANGO_SUPERUSER_PASSWORD": PASSWORD},
    )
    base = f"http://127.0.0.1:{port}"
    proc = _make_serve(env, tmp_path / "serve.log", base)
    try:
        browser = ProxiedBrowser(base)
        assert browser.get("/health").status_code == 200  # a fresh start is well
        _sign_in_and_enrol(browser)
        _post_form(
            browser,
            "/admin/ledger/currency/add/",
            {
                "code": "BTC",
                "name": "Bitcoin",
                "decimals": "8",
                "enabled": "on",
                "crediting_threshold": "2",
                "polling_threshold": "4",
                "network": "regtest",
            },
        )
        currency_id = re.search(
            r"/admin/ledger/currency/(\d+)/change/", browser.get("/admin/ledger/currency/").text
        ).group(1)
        wallet_fields = {
            "name": "hot",
            "currency": currency_id,
            "backend": "bitcoind",
            "enabled": "on",
            "url": ours.url,
        }
        page = browser.get("/admin/ledger/wallet/add/")
        tried = browser.post(
            "/admin/ledger/wallet/test-connection/",
            {**wallet_fields, "csrfmiddlewaretoken": browser.csrf_token(page.text)},
        )
        assert tried.json()["ok"] is True, tried.text
        _post_form(browser, "/admin/ledger/wallet/add/", wallet_fields)
        wallet_id = re.search(
            r"/admin/ledger/wallet/(\d+)/change/", browser.get("/admin/ledger/wallet/").text
        ).group(1)

        # Coins the node holds before the books know them: the first import, to "treasury".
        pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "5", mine=1)
        preview = _post_form(
            browser,
            "/admin/ledger/wallet/import/",
            {"wallet": wallet_id, "new_user": "treasury", "preview": "1"},
            expect=200,
        )
        assert "5.00000000 BTC" in preview.text
        expected = re.search(r'name="expected" value="(\d+)"', preview.text).group(1)
        browser.post(
            "/admin/ledger/wallet/import/",
            {
                "wallet": wallet_id,
                "new_user": "treasury",
                "expected": expected,
                "confirm": "1",
                "csrfmiddlewaretoken": browser.csrf_token(preview.text),
            },
        )
        person = browser.get("/admin/person/treasury/").text
        assert "5.00000000 BTC" in person

        # A deposit: a receiving address from the person's page, paid, confirmed, credited.
        given = browser.post(
            "/admin/person/treasury/address/",
            {"wallet": wallet_id, "csrfmiddlewaretoken": browser.csrf_token(person)},
        )
        assert given.status_code == 302, given.text[-2000:]
        person = browser.get("/admin/person/treasury/").text
        address = re.search(r'/admin/ledger/address/\d+/change/"><code>(\w+)</code>', person)
        pay_from_outside(ours, outside, address.group(1), "1.5", mine=2)
        _manage(env, "update_confirmations")
        person = browser.get("/admin/person/treasury/").text
        assert "6.50000000 BTC" in person and "1.50000000 BTC" in person
        deposits = browser.get("/admin/ledger/networktransaction/").text
        assert "treasury" in deposits
    finally:
        stop(proc)
        time.sleep(0.2)
