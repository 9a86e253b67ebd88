"""One definition of the wallets the project works with: `Wallet.objects.active()` (the wallet
and its currency enabled), read by health, the overview, the queue form, rescan and the
broadcaster."""

import pytest

from ledger.actors import SYSTEM
from ledger.models import Wallet
from tests.support import make_currency

pytestmark = pytest.mark.django_db

DEAD = {"url": "http://u:p@127.0.0.1:9"}  # nothing listens: a probe would answer quickly


@pytest.fixture
def wallets(btc):
    off = make_currency("LTC", enabled=False)
    return {
        "on": Wallet.objects.create(name="active-on", currency=btc, backend_settings=DEAD),
        "wallet-off": Wallet.objects.create(
            name="active-wallet-off", currency=btc, enabled=False, backend_settings=DEAD
        ),
        "currency-off": Wallet.objects.create(
            name="active-currency-off", currency=off, backend_settings=DEAD
        ),
    }


def test_it_needs_the_wallet_and_its_currency_enabled(wallets):
    assert list(Wallet.objects.active().filter(name__startswith="active-")) == [wallets["on"]]


def test_it_probes_only_active_wallets_for_health(wallets, settings):
    from ops import health

    settings.HEALTH_NODE_TIMEOUT = 1
    probed = health.probe_nodes()["wallets"]
    assert "active-on" in probed
    assert "active-currency-off" not in probed
    assert "active-wallet-off" not in probed


def test_it_shows_only_active_wallets_on_the_overview(wallets):
    from ops import overview

    shown = {row["wallet"].name for row in overview.wallet_rows()}
    assert "active-on" in shown
    assert "active-currency-off" not in shown
    assert "active-wallet-off" not in shown


def test_it_offers_only_active_wallets_in_the_queue_form(wallets):
    from broadcasts.admin_queue import QueueForm

    offered = set(QueueForm().fields["wallet"].queryset.values_list("name", flat=True))
    assert "active-on" in offered
    assert "active-currency-off" not in offered
    assert "active-wallet-off" not in offered


def test_it_rescans_only_active_wallets(wallets, monkeypatch):
    from ledger import rescan

    monkeypatch.setattr(rescan, "rescan_wallet", lambda wallet, *a, **k: {"ok": True})
    assert "active-on" in rescan.rescan_addresses(by=SYSTEM)
    assert not {"active-currency-off", "active-wallet-off"} & set(
        rescan.rescan_addresses(by=SYSTEM)
    )


def test_it_broadcasts_only_for_active_wallets(wallets, monkeypatch):
    from broadcasts import broadcaster

    seen = []

    class Recorder:
        def __init__(self, wallet):
            seen.append(wallet.name)

        def run(self):
            return broadcaster.Result(message="")

    monkeypatch.setattr(broadcaster, "Broadcaster", Recorder)
    broadcaster.broadcast_wallets()
    assert "active-on" in seen
    assert not {"active-currency-off", "active-wallet-off"} & set(seen)
