"""Node URLs only where the deployment's nodes live (NODE_HOSTS): an Admin cannot make the
server call another address (server-side request forgery, port scans), nothing anonymous makes
it call a node, and no error quotes a node password."""

import json
import socket

import pytest

from ledger.models import Wallet
from ops.models import Alert
from tests.support import make_currency

pytestmark = pytest.mark.django_db

HEALTH_TOKEN = "health-token-for-the-node-hosts-tests-0123"


class Listener:
    """A loopback port that records whether anything connected to it (never answers)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def connections(self) -> int:
        got = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return got
            conn.close()
            got += 1


@pytest.fixture
def listener():
    listening = Listener()
    yield listening
    listening.sock.close()


@pytest.fixture(autouse=True)
def short_probes(settings):
    from django.core.cache import cache

    settings.HEALTH_TOKEN = HEALTH_TOKEN
    settings.HEALTH_NODE_TIMEOUT = 1
    cache.clear()
    yield
    cache.clear()


def _add_wallet(client, currency, backend, backend_settings, name="evil"):
    return client.post(
        "/admin/ledger/wallet/add/",
        {
            "name": name,
            "currency": currency.pk,
            "backend": backend,
            "enabled": "on",
            **backend_settings,  # the wallet form's node fields (url, api_key, pin, base_url...)
        },
    )


@pytest.mark.parametrize(
    "backend, backend_settings",
    [
        ("bitcoind", {"url": "http://u:p@169.254.169.254:80/latest/meta-data"}),
        ("bitcoind", {"url": "http://u:p@10.0.0.7:6379"}),
        ("blockio", {"api_key": "k", "pin": "p", "base_url": "http://169.254.169.254/"}),
    ],
)
def test_it_refuses_an_admin_a_node_url_off_the_allow_list(
    client, admin, backend, backend_settings
):
    client.force_login(admin)
    response = _add_wallet(client, make_currency("BTC"), backend, backend_settings)
    assert response.status_code == 200
    assert "is not on NODE_HOSTS" in response.content.decode()
    assert not Wallet.objects.filter(name="evil").exists()


def test_it_accepts_a_node_url_on_the_allow_list(client, admin, settings):
    settings.NODE_HOSTS = ["node.internal"]
    client.force_login(admin)
    response = _add_wallet(
        client, make_currency("BTC"), "bitcoind", {"url": "http://u:p@node.internal:8332"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Wallet.objects.filter(name="evil").exists()


def test_it_never_calls_a_node_for_an_anonymous_health(client, listener):
    Wallet.objects.create(
        name="watched",
        currency=make_currency("BTC"),
        backend_settings={"url": f"http://u:p@127.0.0.1:{listener.port}"},
    )
    for _ in range(3):
        assert client.get("/health").status_code in (200, 503)
    assert listener.connections() == 0


def test_it_tells_anonymous_callers_what_the_scheduler_recorded(client, db):
    _recent_task()
    assert client.get("/health").status_code == 200
    Alert.objects.create(key="node.unreachable:btc", kind="node.unreachable", title="down")
    response = client.get("/health")
    assert (response.status_code, json.loads(response.content)) == (503, {"ok": False})


def test_it_never_connects_to_a_host_taken_off_the_list(client, listener, settings):
    # A wallet saved before the deployment narrowed NODE_HOSTS: refused before every request.
    settings.NODE_HOSTS = ["node.internal"]
    Wallet.objects.create(
        name="old",
        currency=make_currency("BTC"),
        backend_settings={"url": f"http://u:p@127.0.0.1:{listener.port}"},
    )
    response = client.get("/health", HTTP_AUTHORIZATION=f"Bearer {HEALTH_TOKEN}")
    status = json.loads(response.content)["nodes"]["wallets"]["old"]
    assert status == {"ok": False, "wallet": "old", "error": "HostRefused"}
    assert listener.connections() == 0


@pytest.mark.parametrize("delimiter", ["/", "#", "?"])
def test_it_never_shows_a_node_password_holding_a_url_delimiter(client, superuser, delimiter):
    secret = f"s3cr{delimiter}etpart"
    wallet = Wallet.objects.create(
        name="odd",
        currency=make_currency("BTC"),
        backend_settings={"url": f"http://rpcuser:{secret}@127.0.0.1:9"},
    )
    client.force_login(superuser)
    pages = [
        client.get("/admin/").content.decode(),
        client.get(f"/admin/ledger/wallet/{wallet.pk}/change/").content.decode(),
        client.get(f"/admin/ledger/wallet/{wallet.pk}/reconcile/").content.decode(),
    ]
    for page in pages:
        assert "s3cr" not in page and "etpart" not in page


def _recent_task():
    from django.utils import timezone
    from django_q.models import Schedule, Task

    now = timezone.now()
    Schedule.objects.update(next_run=now)
    Task.objects.create(
        id="recent", name="poll-run", func="x.y", started=now, stopped=now, success=True
    )
