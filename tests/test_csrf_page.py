"""A refused form POST names the setting to change, never a bare "CSRF verification failed"."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_it_names_csrf_trusted_origins_for_an_untrusted_origin(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://admin.example.com"]
    client = Client(enforce_csrf_checks=True)
    client.get("/admin/login/")  # the CSRF cookie, as a browser gets it
    response = client.post(
        "/admin/login/",
        {
            "username": "x",
            "password": "y",
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
        # TLS ended at a proxy the server was not told about: the page came over https.
        HTTP_ORIGIN="https://testserver",
    )
    page = response.content.decode()
    assert response.status_code == 403
    assert "CSRF_TRUSTED_ORIGINS" in page and "https://testserver" in page
    assert "BEHIND_TLS_PROXY" in page
    assert "https://admin.example.com" in page
