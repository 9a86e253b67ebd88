"""The wallet's admin page: what an operator can and cannot do to a wallet."""

import pytest

from tests.support import offline_wallet

pytestmark = pytest.mark.django_db


def test_it_offers_no_delete_on_a_wallets_page(client, superuser, btc):
    # Wallets are never deleted (their accounts and ledger rows protect them): where an import
    # lands, no red Delete that would only fail.
    wallet = offline_wallet(btc, "kept")
    client.force_login(superuser)
    page = client.get(f"/admin/ledger/wallet/{wallet.pk}/change/").content.decode()
    assert "deletelink" not in page
    assert client.post(f"/admin/ledger/wallet/{wallet.pk}/delete/").status_code == 403


ADD = "/admin/ledger/wallet/add/"
TEST = "/admin/ledger/wallet/test-connection/"


def _fields(btc, **kwargs):
    return {"name": "hot", "currency": btc.pk, "backend": "bitcoind", "enabled": "on", **kwargs}


def test_it_asks_for_each_backends_settings_by_name_not_as_json(client, superuser, btc):
    from ledger.models import Wallet

    client.force_login(superuser)
    page = client.get(ADD).content.decode()
    assert 'name="backend_settings"' not in page
    assert 'name="url"' in page and 'name="api_key"' in page and 'name="pin"' in page
    refused = client.post(ADD, _fields(btc, url=""))
    assert (
        refused.status_code == 200
        and "The node&#x27;s RPC URL is required" in refused.content.decode()
    )
    refused = client.post(ADD, _fields(btc, backend="blockio", api_key=""))
    assert "block.io&#x27;s API key is required" in refused.content.decode()
    assert not Wallet.objects.exists()


def test_it_saves_a_bitcoind_wallet_from_its_fields(client, superuser, btc):
    from ledger.models import Wallet

    client.force_login(superuser)
    url = "http://user:secret@127.0.0.1:18443"
    assert client.post(ADD, _fields(btc, url=url)).status_code == 302
    assert Wallet.objects.get().backend_settings == {"url": url}


def test_it_keeps_a_secret_left_empty_when_a_wallet_is_changed(client, superuser, btc, settings):
    from ledger.models import Wallet

    settings.NODE_HOSTS = [*settings.NODE_HOSTS, "block.io"]  # its default API host, as deployed

    wallet = Wallet.objects.create(
        name="bio",
        currency=btc,
        backend="blockio",
        backend_settings={"api_key": "k-1", "pin": "p-1", "network": "BTCTEST"},
    )
    client.force_login(superuser)
    page = client.get(f"/admin/ledger/wallet/{wallet.pk}/change/").content.decode()
    assert "k-1" not in page and "p-1" not in page
    response = client.post(
        f"/admin/ledger/wallet/{wallet.pk}/change/",
        {
            "name": "bio",
            "enabled": "on",
            "api_key": "",
            "pin": "",
            "network": "BTC",
            "base_url": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    wallet.refresh_from_db()
    assert wallet.backend_settings == {"api_key": "k-1", "pin": "p-1", "network": "BTC"}


def test_it_tests_the_connection_before_anything_is_saved(client, superuser, btc, node):
    from ledger.models import Wallet

    client.force_login(superuser)
    ok = client.post(TEST, _fields(btc, url=node.url)).json()
    assert ok["ok"] is True and ok["code"] == "connected" and "block height" in ok["message"]
    down = client.post(TEST, _fields(btc, url="http://u:p@127.0.0.1:9")).json()
    assert down["ok"] is False and down["code"] == "node_unreachable"
    bad = client.post(TEST, _fields(btc, url=""))
    assert (
        bad.status_code == 400 and bad.json()["code"] == "invalid" and "url" in bad.json()["errors"]
    )
    assert not Wallet.objects.exists()


def test_it_retires_an_empty_wallet_and_frees_its_name(client, superuser, btc, db_wallet):
    from ledger import services
    from ledger.models import Account, Wallet

    client.force_login(superuser)
    action = {"action": "retire", "_selected_action": [db_wallet.pk]}
    client.post("/admin/ledger/wallet/", action)
    db_wallet.refresh_from_db()
    assert db_wallet.retired_at is not None and not db_wallet.enabled
    assert db_wallet.name != "offline"
    assert (
        client.post(ADD, _fields(btc, name="offline", url="http://u:p@127.0.0.1:1")).status_code
        == 302
    )
    full = Wallet.objects.get(name="offline")
    services.post(
        services.system_account(full, Account.Code.IMPORT),
        services.user_account("u-r", btc),
        5,
        "import",
    )
    client.post("/admin/ledger/wallet/", {"action": "retire", "_selected_action": [full.pk]})
    full.refresh_from_db()
    assert full.retired_at is None and full.enabled  # it holds coins: not retired


def test_it_records_a_retirement_in_the_audit_log(client, superuser, db_wallet):
    from auditlog.models import LogEntry as AuditEntry

    client.force_login(superuser)
    client.post("/admin/ledger/wallet/", {"action": "retire", "_selected_action": [db_wallet.pk]})
    entry = AuditEntry.objects.get_for_object(db_wallet).first()
    assert entry.actor == superuser and entry.changes_dict["enabled"] == ["True", "False"]


def test_it_takes_a_bitcoind_wallets_zmq_endpoint_on_an_allowed_host(client, superuser, btc):
    from ledger.models import Wallet

    client.force_login(superuser)
    url = "http://user:secret@127.0.0.1:18443"
    refused = client.post(ADD, _fields(btc, url=url, zmq="http://127.0.0.1:28332"))
    assert refused.status_code == 200 and not Wallet.objects.exists()
    assert client.post(ADD, _fields(btc, url=url, zmq="tcp://127.0.0.1:28332")).status_code == 302
    assert Wallet.objects.get().backend_settings == {"url": url, "zmq": "tcp://127.0.0.1:28332"}
