"""The wallet's form: the node settings of its backend as named fields (never a raw JSON box),
checked before they are saved; secrets are never rendered back, and left empty on an existing
wallet they stay as they are."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.conf import settings

from . import node_address
from .hosts import SCHEMES, UrlRefused, check_url
from .models import Wallet

BITCOIND, BLOCKIO = Wallet.Backend.BITCOIND, Wallet.Backend.BLOCKIO
# Form field -> backend_settings key, per backend.
KEYS = {BITCOIND: ("url", "cookie_file", "zmq"), BLOCKIO: ("api_key", "pin", "base_url", "network")}
SECRETS = ("api_key", "pin")
# Shown again on an existing wallet's form, so that saving it unchanged keeps them.
SHOWN = ("cookie_file", "zmq", "base_url", "network")
REQUIRED = {
    "url": "The node's RPC URL is required: its host and port, or the whole URL.",
    "api_key": "block.io's API key is required.",
    "pin": "block.io's PIN is required (it signs the withdrawals).",
}
FIELDSETS = {
    BITCOIND: (
        "bitcoind (JSON-RPC)",
        ["host", "port", "rpc_user", "rpc_password", "cookie_file", "url", "zmq"],
    ),
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
    host = forms.CharField(
        required=False,
        label="RPC host",
        max_length=253,
        help_text="The node's host name or IP address (bitcoin.conf rpcbind); it must be on "
        "NODE_HOSTS.",
    )
    port = forms.IntegerField(
        required=False,
        label="RPC port",
        min_value=1,
        max_value=65535,
        help_text="bitcoin.conf rpcport: mainnet 8332, testnet 18332, regtest 18443.",
    )
    rpc_user = forms.CharField(
        required=False,
        label="RPC user",
        max_length=200,
        help_text="bitcoin.conf rpcuser (leave empty with a cookie file).",
    )
    rpc_password = _secret(
        "RPC password",
        "bitcoin.conf rpcpassword, any characters. Never shown again; left empty on an existing "
        "wallet: kept.",
    )
    cookie_file = forms.CharField(
        required=False,
        label="Or a cookie file",
        max_length=500,
        widget=forms.TextInput(attrs={"size": 60, "placeholder": "/var/lib/bitcoind/.cookie"}),
        help_text="Instead of a user and password: the node's .cookie file (a node on this "
        "machine, its file readable by the service), read again at each connection since the "
        "node writes a new one at each start.",
    )
    url = forms.CharField(
        required=False,
        label="Or the whole RPC URL",
        max_length=500,
        widget=forms.TextInput(attrs={"size": 60, "placeholder": "http://USER:PASSWORD@HOST:PORT"}),
        help_text="Instead of the fields above: the URL with rpcuser and rpcpassword ('/', '?', "
        "'#' and '@' in them percent-encoded); the host must be on NODE_HOSTS. Shown masked "
        "once saved: left empty on an existing wallet, it stays as it is.",
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        saved = (self.instance.backend_settings or {}) if self.instance.pk else {}
        for key in SHOWN:
            if saved.get(key) and "@" not in str(saved[key]):
                self.fields[key].initial = saved[key]
        if saved.get("url"):
            parts = node_address.parts(saved["url"])
            for key in ("host", "port", "rpc_user"):
                self.fields[key].initial = parts[key]

    def backend(self) -> str:
        if self.instance.pk:
            return self.instance.backend
        return self.cleaned_data.get("backend") or self.data.get("backend") or BITCOIND

    def clean(self):
        data = super().clean()
        backend = self.backend()
        old = dict(self.instance.backend_settings or {}) if self.instance.pk else {}
        new = dict(old)
        if backend == BITCOIND:
            self._node_url(data, old.get("url", ""))
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
        if backend == BITCOIND and new.get("cookie_file"):
            # A saved file is not read again here: a stopped node removes it, and the wallet
            # must stay editable (disabled, say) meanwhile.
            self._check_cookie(new, read=new["cookie_file"] != old.get("cookie_file"))
        self.instance.backend_settings = new
        return data

    def _node_url(self, data, old_url):
        """The URL the host, port, user and password fields make, into data["url"] (a whole
        URL typed instead wins); the saved password is kept when its field is left empty."""
        host = (data.get("host") or "").strip()
        if (data.get("url") or "").strip() or not host:
            return
        if not data.get("port"):
            self.add_error("port", "The node's RPC port is required with its host.")
            return
        user = (data.get("rpc_user") or "").strip()
        saved = node_address.parts(old_url) if old_url else {}
        # The saved password goes with the saved user only.
        password = data.get("rpc_password") or (
            saved["password"] if user and user == saved.get("rpc_user") else ""
        )
        if user and not password:
            self.add_error("rpc_password", "The RPC password is required with a user.")
            return
        data["url"] = node_address.compose(host, data["port"], user, password)

    def _check_cookie(self, new, read):
        if urlsplit(new.get("url", "")).username:
            self.add_error("cookie_file", "A user and password, or a cookie file: not both.")
            return
        if not read:
            return
        try:
            node_address.read_cookie(new["cookie_file"])
        except node_address.CookieUnreadable as exc:
            self.add_error("cookie_file", str(exc))
