"""ledger.hosts.check_url: the allow-list of hosts the server may call."""

import pytest

from ledger.hosts import UrlRefused, check_url, host_allowed

HOSTS = ["node.internal", ".nodes.example.com", "10.1.0.0/16", "::1", "127.0.0.1"]


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pw@node.internal:8332",
        "https://NODE.internal/",
        "http://a.nodes.example.com:8332",
        "http://nodes.example.com",
        "http://10.1.2.3:8332",
        "http://[::1]:8332",
        "http://u:p%2Fq%23r@127.0.0.1:8332",
    ],
)
def test_it_allows_hosts_on_the_list(url):
    assert check_url(url, HOSTS)


@pytest.mark.parametrize(
    "url, code",
    [
        ("http://169.254.169.254/latest/meta-data", "host_not_allowed"),
        ("http://10.2.0.1:8332", "host_not_allowed"),
        ("http://evilnodes.example.com", "host_not_allowed"),
        ("http://node.internal.evil.com", "host_not_allowed"),
        ("http://127.0.0.2:8332", "host_not_allowed"),
        ("http://[::ffff:127.0.0.1]:8332", "host_not_allowed"),
        ("http://localhost:8332", "host_not_allowed"),
        ("file:///etc/passwd", "url_scheme"),
        ("gopher://node.internal/", "url_scheme"),
        ("http://node.internal\\@evil.com/", "url_invalid"),
        ("http://node.internal:99999/", "url_invalid"),
        ("", "url_invalid"),
        (None, "url_invalid"),
    ],
)
def test_it_refuses_other_hosts_with_a_code(url, code):
    with pytest.raises(UrlRefused) as refused:
        check_url(url, HOSTS)
    assert refused.value.code == code


@pytest.mark.parametrize(
    "url",
    [
        "http://rpcuser:s3cr/et@127.0.0.1:8332",
        "http://rpcuser:s3cr#et@127.0.0.1:8332",
        "http://rpcuser:s3cr?et@127.0.0.1:8332",
        "http://rpcuser:9999/s3cret@127.0.0.1:8332",
    ],
)
def test_it_never_quotes_a_password_holding_a_url_delimiter(url):
    with pytest.raises(UrlRefused) as refused:
        check_url(url, HOSTS)
    assert refused.value.code == "url_credentials"
    assert "s3cr" not in str(refused.value)


def test_it_allows_nothing_with_an_empty_list():
    assert not host_allowed("127.0.0.1", [])
    with pytest.raises(UrlRefused):
        check_url("http://127.0.0.1:8332", [])
