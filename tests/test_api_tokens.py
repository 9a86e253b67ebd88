"""API tokens: stored hashed, shown once, revocable; no data without valid credentials."""

import pytest
from django.test import Client
from django.utils import timezone

from balances.models import ApiToken, hash_token
from tests.balances_helpers import currency, deposit, network_account
from tests.support import grant
from tests.test_graphql import ask, balances_query

pytestmark = pytest.mark.django_db


@pytest.fixture
def funded(balance_cache):
    deposit(network_account(currency("BTC")), "u-1", 42)


def test_it_refuses_a_request_without_credentials(funded):
    response = ask(balances_query("u-1"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "data" not in response.json() and "0.00000042" not in response.content.decode()


@pytest.mark.parametrize(
    "header", ["Bearer cab_not-a-token", "Bearer ", "Basic dXNlcjpwdw==", "Bearer " + "x" * 500]
)
def test_it_refuses_a_bad_token(funded, header):
    response = Client().post(
        "/graphql",
        {"query": balances_query("u-1")},
        content_type="application/json",
        HTTP_AUTHORIZATION=header,
    )
    assert response.status_code == 401
    assert "data" not in response.json()


def test_it_refuses_a_revoked_token_with_403(funded):
    token, raw = ApiToken.issue("old app")
    assert ask(balances_query("u-1"), raw).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    response = ask(balances_query("u-1"), raw)
    assert response.status_code == 403
    assert "data" not in response.json()


def test_it_refuses_sessions_that_are_not_staff_or_lack_the_permission(funded, outsider, staff):
    grant(outsider, "balances.view_user_balances")
    for user in (outsider, staff):  # not staff; staff without the permission
        client = Client()
        client.force_login(user)
        response = ask(balances_query("u-1"), client=client)
        assert response.status_code == 403
        assert "data" not in response.json()


def test_it_stores_only_a_hash_and_records_last_use(funded):
    token, raw = ApiToken.issue("wallets app")
    assert raw.startswith("cab_") and len(raw) > 40
    assert token.token_hash == hash_token(raw) and raw not in token.token_hash
    assert not ApiToken.objects.filter(token_hash=raw).exists()
    assert token.last_used_at is None
    ask(balances_query("u-1"), raw)
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_it_shows_the_raw_token_once_when_created_in_the_admin(superuser):
    client = Client()
    client.force_login(superuser)
    response = client.post(
        "/admin/balances/apitoken/add/",
        {"name": "mobile app", "scopes": ["balances:read", "transfers:write"]},
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(name="mobile app")
    assert token.scopes == ["balances:read", "transfers:write"]
    page = response.content.decode()
    raw = page.split('<code id="raw-token" style="font-size: 1.2em">')[1].split("</code>")[0]
    assert hash_token(raw) == token.token_hash and token.created_by == superuser
    # Never again: the change page shows only the prefix.
    change = client.get(f"/admin/balances/apitoken/{token.pk}/change/").content.decode()
    assert raw not in change and token.prefix in change


def test_it_lets_only_permitted_staff_revoke(funded, viewer):
    token, raw = ApiToken.issue("partner")
    grant(viewer, "balances.view_apitoken", "balances.change_apitoken")
    client = Client()
    client.force_login(viewer)
    data = {"action": "revoke", "_selected_action": [token.pk]}
    client.post("/admin/balances/apitoken/", data)
    token.refresh_from_db()
    assert token.revoked_at is None  # the action is not offered without the permission
    grant(viewer, "balances.revoke_apitoken")
    client.post("/admin/balances/apitoken/", data)
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == viewer
    assert ask(balances_query("u-1"), raw).status_code == 403


def test_it_refuses_the_balances_query_to_a_token_without_balances_read(funded):
    _, raw = ApiToken.issue("events reader", scopes=["events:read"])
    response = ask(balances_query("u-1"), raw)
    assert response.status_code == 403
    assert "data" not in response.json() and "balances:read" in response.content.decode()


def test_it_refuses_an_admin_token_without_a_scope(superuser):
    client = Client()
    client.force_login(superuser)
    response = client.post("/admin/balances/apitoken/add/", {"name": "nothing"})
    assert response.status_code == 200 and b'id="raw-token"' not in response.content
    assert not ApiToken.objects.filter(name="nothing").exists()


def test_it_issues_a_token_from_the_command_with_its_scopes_and_issuer(superuser):
    from io import StringIO

    from django.contrib.admin.models import LogEntry
    from django.core.management import call_command

    out = StringIO()
    call_command(
        "issue_api_token",
        "shop",
        "--scope",
        "transfers:write",
        "--scope",
        "events:read",
        "--by",
        superuser.username,
        stdout=out,
    )
    raw = out.getvalue().strip().splitlines()[-1]
    token = ApiToken.objects.get(token_hash=hash_token(raw))
    assert token.name == "shop" and token.scopes == ["events:read", "transfers:write"]
    assert token.created_by == superuser
    assert LogEntry.objects.filter(object_id=str(token.pk), user=superuser).exists()
