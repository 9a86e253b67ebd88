"""Node URLs are shown with their credentials masked, whatever the credentials contain."""

import pytest

from cryptoadmin.masking import mask_url

SECRET_URLS = [
    ("http://rpcuser:s3cret@127.0.0.1:8332", "s3cret"),
    ("http://rpcuser:p@ss@127.0.0.1:8332", "ss"),  # '@' in the password: its tail leaked
    ("http://rpcuser:p@ss@127.0.0.1:8332", "rpcuser"),
    ("HTTP://rpcuser:s3cret@127.0.0.1:8332", "s3cret"),  # upper-case scheme was not masked
    ("Https://rpcuser:s3cret@node.example:8332/wallet/x", "s3cret"),
    ("http://rpcuser:a/b@c@127.0.0.1:8332", "a/b"),  # '/' and '@' in the password
    ("http://rpcuser:a/b@c@127.0.0.1:8332", "b@c"),
    ("svn+ssh://rpcuser:s3cret@host", "s3cret"),
    ("rpcuser:s3cret@127.0.0.1:8332", "s3cret"),  # no scheme at all
    (" http://rpcuser:s3cret@127.0.0.1:8332", "s3cret"),
    ("http://rpcuser:s3cr\net@127.0.0.1:8332", "s3cr"),
]


@pytest.mark.parametrize("url, secret", SECRET_URLS)
def test_it_never_shows_any_part_of_the_credentials(url, secret):
    masked = mask_url(url)
    assert secret not in masked, masked
    assert "•••@" in masked


def test_it_keeps_host_and_port_visible():
    assert mask_url("http://u:p@ss@127.0.0.1:8332") == "http://•••@127.0.0.1:8332"
    assert mask_url("HTTP://u:p@127.0.0.1:8332/wallet") == "HTTP://•••@127.0.0.1:8332/wallet"
    assert mask_url("http://127.0.0.1:8332") == "http://127.0.0.1:8332"


@pytest.mark.django_db
def test_it_shows_a_viewer_no_part_of_a_password_containing_an_at_sign(client, viewer, btc):
    from ledger.models import Wallet

    wallet = Wallet.objects.create(
        name="at-sign",
        currency=btc,
        backend_settings={"url": "HTTP://rpcuser:hunter2@Xq7zTail@127.0.0.1:9"},
    )
    client.force_login(viewer)
    for url in ("/admin/ledger/wallet/", f"/admin/ledger/wallet/{wallet.pk}/change/"):
        page = client.get(url).content.decode()
        assert "127.0.0.1:9" in page, url
        assert "Xq7zTail" not in page and "hunter2" not in page and "rpcuser" not in page, url
