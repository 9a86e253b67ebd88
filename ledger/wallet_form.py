"""The wallet's form: the node settings of its backend as named fields (never a raw JSON box),
checked before they are saved; secrets are never rendered back, and left empty on an existing
wallet they stay as they are."""

from __future__ import annotations

from django import forms
from django.conf import settings

from .hosts import SCHEMES, UrlRefused, check_url
from .models import Wallet

BITCOIND, BLOCKIO = Wallet.Backend.BITCOIND, Wallet.Backend.BLOCKIO
# Form field -> backend_settings key, per backend.
KEYS = {BITCOIND: ("url", "zmq"), BLOCKIO: ("api_key", "pin", "base_url", "network")}
SECRETS = ("api_key", "pin")
REQUIRED = {
    "url": "The node's RPC URL is required.",
    "api_key": "block.io's API key is required.",
    "pin": "block.io's PIN is required (it signs the withdrawals).",
}
FIELDSETS = {
    BITCOIND: ("bitcoind (JSON-RPC)", ["url", "zmq"]),
    BLOCKIO: ("block.io", ["api_key", "pin", "base_url", "network"]),
}


def _secret(label, help_text):
    return forms.CharField(
        required=False,
        label=label,
        help_text=help_text,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "size": 40}),
    )


class WalletForm(forms.ModelForm):
    url = forms.CharField(
        required=False,
        label="Node RPC URL",
        max_length=500,
        widget=forms.TextInput(attrs={"size": 60, "placeholder": "http://USER:PASSWORD@HOST:PORT"}),
        help_text="bitcoind's rpcuser, rpcpassword and rpcport (regtest 18443, testnet 18332, "
        "mainnet 8332); the host must be on NODE_HOSTS. Shown masked once saved: left empty "
        "on an existing wallet, it stays as it is.",
    )
    zmq = forms.CharField(
        required=False,
        label="ZMQ endpoint",
        max_length=200,
        widget=forms.TextInput(attrs={"size": 40, "placeholder": "tcp://HOST:28332"}),
        help_text="Optional: the node's zmqpubhashblock/zmqpubhashtx endpoint, so listen_node "
        "hears of blocks and transactions at once (the poll stays the safety net).",
    )
    api_key = _secret(
        "API key", "From block.io's dashboard. Left empty on an existing wallet: kept."
    )
    pin = _secret("PIN", "The wallet's secret PIN. Left empty on an existing wallet: kept.")
    base_url = forms.CharField(
        required=False,
        label="API base URL",
        max_length=500,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Empty: block.io's own (https://block.io/api/v2/).",
    )
    network = forms.CharField(
        required=False, max_length=16, help_text="block.io's network code: BTC, BTCTEST, LTC..."
    )

    class Meta:
        model = Wallet
        fields = ["name", "currency", "backend", "enabled"]

    def backend(self) -> str:
        if self.instance.pk:
            return self.instance.backend
        return self.cleaned_data.get("backend") or self.data.get("backend") or BITCOIND

    def clean(self):
        data = super().clean()
        backend = self.backend()
        old = dict(self.instance.backend_settings or {}) if self.instance.pk else {}
        new = dict(old)
        for key in KEYS.get(backend, ()):
            value = (data.get(key) or "").strip()
            if value:
                new[key] = value
            elif key in REQUIRED and not old.get(key):
                self.add_error(key, REQUIRED[key])
            elif not self.instance.pk or key not in (*SECRETS, "url"):
                new.pop(key, None)  # an optional value emptied on purpose
        for key, schemes in (("url", SCHEMES), ("base_url", SCHEMES), ("zmq", ("tcp",))):
            if new.get(key) and key in KEYS.get(backend, ()):
                try:
                    check_url(new[key], settings.NODE_HOSTS, schemes=schemes)
                except UrlRefused as exc:
                    self.add_error(key, str(exc))
        self.instance.backend_settings = new
        return data
