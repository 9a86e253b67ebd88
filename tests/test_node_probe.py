"""One way to probe every wallet's node (ledger/probe.py), with the timeout an explicit
parameter of the backends, used by health and the overview."""

import socket
import time

import pytest

from ledger.backends import BackendError, backend_for
from ledger.models import Wallet
from ledger.probe import probe_wallets

pytestmark = pytest.mark.django_db

DEAD = {"url": "http://127.0.0.1:9"}  # nothing listens there


@pytest.fixture
def hung_url():
    # Accepts connections (the kernel's backlog) and never answers.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://u:p@127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_it_passes_the_timeout_to_every_backend(btc, settings):
    bitcoind = Wallet.objects.create(name="probe-b", currency=btc, backend_settings=DEAD)
    blockio = Wallet.objects.create(
        name="probe-io",
        currency=btc,
        backend="blockio",
        backend_settings={"api_key": "k", "base_url": "http://127.0.0.1:9"},
    )
    for wallet in (bitcoind, blockio):
        assert backend_for(wallet, timeout=1.5).timeout == 1.5
        assert wallet.get_backend(timeout=2).timeout == 2
        assert wallet.get_backend().timeout == settings.NODE_RPC_TIMEOUT


def test_it_asks_each_wallet_in_order_with_the_given_timeout(btc):
    wallets = [
        Wallet.objects.create(name=f"probe-{i}", currency=btc, backend_settings=DEAD)
        for i in range(3)
    ]
    got = probe_wallets(wallets, lambda w, b: (w.name, b.timeout), timeout=0.7, on_error=None)
    assert got == [("probe-0", 0.7), ("probe-1", 0.7), ("probe-2", 0.7)]


def test_it_turns_a_backend_that_cannot_be_made_into_an_error_row(btc):
    broken = Wallet.objects.create(name="probe-no-url", currency=btc, backend_settings={})
    got = probe_wallets(
        [broken],
        lambda w, b: "asked",
        timeout=1,
        on_error=lambda w, e: type(e).__name__,
        errors=(BackendError,),
    )
    assert got == ["BackendError"]


def test_it_reports_a_misconfigured_wallet_in_health_instead_of_raising(btc, settings):
    from ops import health

    Wallet.objects.create(name="probe-no-url", currency=btc, backend_settings={})
    probed = health.probe_nodes()
    assert probed["ok"] is False
    assert probed["wallets"]["probe-no-url"] == {
        "ok": False,
        "wallet": "probe-no-url",
        "error": "BackendError",
    }


def test_it_gives_up_on_a_hung_node_after_the_health_timeout(btc, settings, hung_url):
    from ops import health

    settings.HEALTH_NODE_TIMEOUT = 1
    Wallet.objects.create(name="probe-hung", currency=btc, backend_settings={"url": hung_url})
    started = time.monotonic()
    probed = health.probe_nodes()
    assert time.monotonic() - started < 5
    assert probed["wallets"]["probe-hung"]["ok"] is False


def test_it_gives_up_on_a_hung_node_on_the_overview(btc, hung_url, monkeypatch):
    from ops import overview

    monkeypatch.setattr(overview, "NODE_TIMEOUT", 1)
    monkeypatch.setattr(overview, "_NODE_CACHE", {})
    Wallet.objects.create(name="probe-hung", currency=btc, backend_settings={"url": hung_url})
    started = time.monotonic()
    rows = {row["wallet"].name: row for row in overview.wallet_rows()}
    assert time.monotonic() - started < 5
    assert rows["probe-hung"]["reachable"] is False
