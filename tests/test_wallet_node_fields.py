"""A bitcoind wallet's node as fields (host, port, user, password, or the node's cookie file)
in the wallet form: checked, tried, and editable later with the password never shown back."""

import pytest

pytestmark = pytest.mark.django_db

ADD = "/admin/ledger/wallet/add/"
TEST = "/admin/ledger/wallet/test-connection/"


def _fields(btc, node, **kwargs):
    fields = {"name": "hot", "currency": btc.pk, "backend": "bitcoind", "enabled": "on"}
    return {**fields, "host": "127.0.0.1", "port": node.rpc_port, **kwargs}


def test_it_makes_the_node_url_from_host_port_user_and_password(client, superuser, btc, node):
    from ledger.models import Wallet

    client.force_login(superuser)
    page = client.get(ADD).content.decode()
    for name in ("host", "port", "rpc_user", "rpc_password", "cookie_file"):
        assert f'name="{name}"' in page, name
    fields = _fields(btc, node, rpc_user=node.user, rpc_password=node.password)
    assert client.post(TEST, fields).json()["code"] == "connected"
    assert client.post(ADD, fields).status_code == 302
    wallet = Wallet.objects.get()
    assert wallet.backend_settings == {"url": node.url}
    # Changed later: host, port and user shown again, the password never; left empty, kept.
    change = f"/admin/ledger/wallet/{wallet.pk}/change/"
    page = client.get(change).content.decode()
    assert f'value="{node.rpc_port}"' in page and f'value="{node.user}"' in page
    assert node.password not in page
    kept = {"name": "hot", "enabled": "on", "host": "127.0.0.1", "port": node.rpc_port}
    # Test connection from that page: the password left empty is the saved one.
    tried = client.post(TEST, {"object_id": wallet.pk, **kept, "rpc_user": node.user}).json()
    assert tried["code"] == "connected", tried
    assert client.post(change, {**kept, "rpc_user": node.user}).status_code == 302
    wallet.refresh_from_db()
    assert wallet.backend_settings == {"url": node.url}
    assert wallet.get_backend().block_height() == node.rpc("getblockcount")
    refused = client.post(change, {**kept, "rpc_user": "other"}).content.decode()
    assert "The RPC password is required with a user." in refused
    refused = client.post(change, {**kept, "port": "", "rpc_user": node.user}).content.decode()
    assert "The node&#x27;s RPC port is required with its host." in refused
    wallet.refresh_from_db()
    assert wallet.backend_settings == {"url": node.url}


def test_it_connects_with_the_nodes_cookie_file(client, superuser, btc, node, tmp_path):
    from ledger.backends import NotSent
    from ledger.models import Wallet

    cookie = tmp_path / ".cookie"
    cookie.write_text(f"{node.user}:{node.password}")  # the file bitcoind writes: user:password
    client.force_login(superuser)
    fields = _fields(btc, node, cookie_file=str(cookie))
    assert client.post(TEST, fields).json()["code"] == "connected"
    both = client.post(ADD, {**fields, "rpc_user": "u", "rpc_password": "p"}).content.decode()
    assert "A user and password, or a cookie file: not both." in both
    missing = client.post(ADD, {**fields, "cookie_file": str(tmp_path / "none")})
    assert "The service cannot read the cookie file" in missing.content.decode()
    assert not Wallet.objects.exists()
    assert client.post(ADD, fields).status_code == 302
    wallet = Wallet.objects.get()
    assert wallet.backend_settings == {
        "url": f"http://127.0.0.1:{node.rpc_port}",
        "cookie_file": str(cookie),
    }
    assert wallet.get_backend().block_height() == node.rpc("getblockcount")
    cookie.unlink()  # a stopped node removes its cookie: nothing is sent, and it says why
    shown = {"name": "hot", "host": "127.0.0.1", "port": node.rpc_port, "cookie_file": str(cookie)}
    tried = client.post(TEST, {"object_id": wallet.pk, **shown, "enabled": "on"}).json()
    assert tried["ok"] is False and "cannot read the cookie file" in tried["message"]
    with pytest.raises(NotSent, match="cannot read the cookie file"):
        wallet.get_backend()
    # The wallet stays editable meanwhile: disabled while its node is down.
    change = client.post(f"/admin/ledger/wallet/{wallet.pk}/change/", shown)
    assert change.status_code == 302, change.content.decode()[-2000:]
    wallet.refresh_from_db()
    assert not wallet.enabled and wallet.backend_settings["cookie_file"] == str(cookie)


def test_it_shows_the_saved_settings_that_are_not_secrets_again(client, superuser, btc):
    from ledger.models import Wallet

    settings = {"api_key": "k-1", "pin": "p-1", "network": "BTCTEST", "base_url": "https://x.test"}
    wallet = Wallet.objects.create(
        name="bio", currency=btc, backend="blockio", backend_settings=settings
    )
    client.force_login(superuser)
    page = client.get(f"/admin/ledger/wallet/{wallet.pk}/change/").content.decode()
    assert 'value="BTCTEST"' in page and 'value="https://x.test"' in page
    assert "k-1" not in page and "p-1" not in page


def test_it_writes_a_password_with_url_characters_so_that_it_reads_back():
    from ledger.node_address import compose, parts

    url = compose("10.0.0.5", 8332, "rpc", "a!b:c/d@e#f?g%")
    assert url.endswith("@10.0.0.5:8332") and url.startswith("http://rpc:a!b:c%2Fd%40e%23f%3Fg%25")
    assert parts(url) == {
        "host": "10.0.0.5",
        "port": 8332,
        "rpc_user": "rpc",
        "password": "a!b:c/d@e#f?g%",
    }
