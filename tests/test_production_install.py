"""The first production install as docs/operations.md ("First production install") tells it: an
empty PostgreSQL database and the environment file, `deploy/manage migrate` and
`createsuperuser`, `deploy/manage serve`, then only the admin over HTTP as the TLS proxy forwards
it: the second factor enrolled at the first sign-in, the first currency, the first wallet (its
connection tried first), the node's coins imported into a new user's account, an address given
to a user, and the deposit to it credited."""

import base64
import os
import re
import secrets
import subprocess
from html import unescape
from urllib.parse import parse_qs, urlsplit

import psycopg2

from tests.prodserver import ProxiedBrowser, start_serve, stop
from tests.support import REPO

DOC = (REPO / "docs" / "operations.md").read_text()
MANAGE = str(REPO / "deploy" / "manage")
PASSWORD = "a long first-install password 42"
BALANCE = r'<td>BTC</td><td class="amount"[^>]*>{}</td>'


def test_it_installs_from_an_empty_database_to_a_credited_deposit(postgres, fresh_node, tmp_path):
    node = fresh_node()
    node.generate(101)  # one mature coinbase: the 50 coins on the node before the install
    database = f"install_{secrets.token_hex(4)}"
    _sql(postgres.url, f"CREATE DATABASE {database}")
    url = postgres.url_for(database)
    # Only PATH and the file deploy/manage reads: nothing else configures the service.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CRYPTOADMIN_ENV": str(_environment_file(tmp_path, url)),
    }
    proc = None
    try:
        _manage(env, "migrate", "--noinput")
        superuser = ("--noinput", "--username", "admin", "--email", "admin@example.com")
        _manage(env, "createsuperuser", *superuser, extra={"DJANGO_SUPERUSER_PASSWORD": PASSWORD})
        assert "deploy/manage serve" in DOC
        proc, base = start_serve(env, tmp_path / "serve.log", manage=[MANAGE])
        browser = ProxiedBrowser(base)
        health = browser.get("/health")  # a fresh start, before any task ran
        assert (health.status_code, health.json()) == (200, {"ok": True})

        _sign_in_enrolling_the_second_factor(browser)
        currency = _first_currency(browser, url)
        wallet = _first_wallet(browser, url, currency, node)
        _first_import(browser, wallet)
        address = _give_address(browser, wallet, "alice")
        node.rpc("sendtoaddress", address, 1.5)
        node.generate(1)
        # The scheduler polls every minute; the documented command does it at once.
        for _ in range(3):
            _manage(env, "update_confirmations")
            if _sql(url, "SELECT count(*) FROM ledger_transaction WHERE kind = 'deposit'") == 1:
                break
        assert _sql(url, "SELECT count(*) FROM ledger_transaction WHERE kind = 'deposit'") == 1
        # The person's page: the balance column first, then the deposit with its address.
        alice = unescape(browser.get("/admin/person/alice/").text)
        assert re.search(BALANCE.format("1.50000000 BTC"), alice) and address in alice
        treasury = unescape(browser.get("/admin/person/treasury/").text)
        assert re.search(BALANCE.format("50.00000000 BTC"), treasury)
    finally:
        if proc is not None:
            stop(proc)
        _sql(postgres.url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _sql(dsn, statement):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchone()[0] if cursor.description else None
    finally:
        conn.close()


def _environment_file(tmp_path, database_url):
    values = {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": database_url,
        "ALLOWED_HOSTS": "127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": "https://127.0.0.1",
        "BEHIND_TLS_PROXY": "1",
        "STATIC_ROOT": str(tmp_path / "static"),
        "NODE_HOSTS": "127.0.0.1",
        "WEB_WORKERS": "1",
        "Q_WORKERS": "1",
    }
    path = tmp_path / "env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return path


def _manage(env, *args, extra=None):
    assert f"deploy/manage {args[0]}" in DOC, args  # a documented command
    done = subprocess.run(
        [MANAGE, *args],
        cwd=REPO,
        env={**env, **(extra or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])


def _submit(browser, path, fields):
    """GET the form (its CSRF token), then POST it as the browser would."""
    page = browser.get(path)
    assert page.status_code == 200, (path, page.status_code)
    return browser.post(path, {**fields, "csrfmiddlewaretoken": browser.csrf_token(page.text)})


def _sign_in_enrolling_the_second_factor(browser):
    from django_otp.oath import totp

    signed = _submit(
        browser,
        "/admin/login/?next=/admin/",
        {"username": "admin", "password": PASSWORD, "otp_token": "", "next": "/admin/"},
    )
    assert signed.status_code == 302, unescape(signed.text)[:2000]
    home = browser.get("/admin/")
    assert home.status_code == 302 and "/admin/second-factor/" in home.headers["Location"]
    enrol = browser.get("/admin/second-factor/")
    secret = re.search(r'id="otp-secret">([A-Z2-7 ]+)<', enrol.text).group(1).replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    done = browser.post(
        "/admin/second-factor/",
        {"code": f"{totp(key):06d}", "csrfmiddlewaretoken": browser.csrf_token(enrol.text)},
    )
    assert done.status_code == 200 and "recovery codes" in done.text.lower()
    assert browser.get("/admin/").status_code == 200


def _first_currency(browser, url):
    added = _submit(
        browser,
        "/admin/ledger/currency/add/",
        {
            "code": "BTC",
            "name": "Bitcoin",
            "decimals": "8",
            "enabled": "on",
            "crediting_threshold": "1",
            "polling_threshold": "2",
            "network": "regtest",
            "_save": "Save",
        },
    )
    assert added.status_code == 302, unescape(added.text)[:3000]
    return _sql(url, "SELECT id FROM ledger_currency WHERE code = 'BTC'")


def _first_wallet(browser, url, currency, node):
    fields = {
        "name": "hot",
        "currency": currency,
        "backend": "bitcoind",
        "enabled": "on",
        "host": "127.0.0.1",
        "port": node.rpc_port,
        "rpc_user": node.user,
        "rpc_password": node.password,
    }
    form = browser.get("/admin/ledger/wallet/add/")
    assert 'name="rpc_password"' in form.text and "Test connection" in form.text
    token = browser.csrf_token(form.text)
    tried = browser.post(
        "/admin/ledger/wallet/test-connection/",
        {**fields, "object_id": "", "csrfmiddlewaretoken": token},
    )
    height = node.rpc("getblockcount")
    assert tried.json() == {
        "ok": True,
        "code": "connected",
        "message": f"Connected: the node is at block height {height}.",
    }
    assert _sql(url, "SELECT count(*) FROM ledger_wallet") == 0  # tried, not saved
    saved = browser.post(
        "/admin/ledger/wallet/add/", {**fields, "_save": "Save", "csrfmiddlewaretoken": token}
    )
    assert saved.status_code == 302, unescape(saved.text)[:3000]
    return _sql(url, "SELECT id FROM ledger_wallet WHERE name = 'hot'")


def _first_import(browser, wallet):
    path = "/admin/ledger/wallet/import/"
    fields = {"wallet": wallet, "new_user": "treasury"}
    preview = _submit(browser, path, {**fields, "preview": "Show the amount"})
    text = unescape(preview.text)
    assert preview.status_code == 200 and 'id="unaccounted">50.00000000 BTC' in text, text[:3000]
    confirmed = browser.post(
        path,
        {
            **fields,
            "expected": re.search(r'name="expected" value="(\d+)"', preview.text).group(1),
            "confirm": "Confirm",
            "csrfmiddlewaretoken": browser.csrf_token(preview.text),
        },
    )
    assert confirmed.status_code == 302, unescape(confirmed.text)[:3000]


def _give_address(browser, wallet, user_id):
    given = _submit(browser, "/admin/ledger/address/add/", {"wallet": wallet, "user_id": user_id})
    assert given.status_code == 302, unescape(given.text)[:3000]
    return parse_qs(urlsplit(given.headers["Location"]).query)["q"][0]
