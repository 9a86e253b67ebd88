"""Every page is sent with a Content-Security-Policy: scripts, styles, images and forms from
this site only, no plugin, no framing, no inline script."""

import pytest

pytestmark = pytest.mark.django_db


def _directives(response):
    header = response.headers.get("Content-Security-Policy", "")
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


@pytest.mark.parametrize("url", ["/admin/login/", "/admin/", "/health", "/nowhere"])
def test_it_sends_a_policy_without_inline_scripts(client, superuser, url):
    client.force_login(superuser)
    policy = _directives(client.get(url))
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["base-uri"] == ["'none'"]
