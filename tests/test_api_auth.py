"""/api/v1/'s skeleton: Bearer tokens with one scope per operation, every refusal in the error
shape {"error": {"code", "message", "field"?}}, the OpenAPI document and its docs page."""

import pytest
from django.test import Client
from django.utils import timezone
from ninja import NinjaAPI, Schema
from ninja.testing import TestClient

from api import errors
from api.auth import scoped
from balances.models import ApiToken

pytestmark = pytest.mark.django_db


class Echo(Schema):
    amount: str
    count: int


def _probe_api():
    # A throwaway API with the real auth and error handlers, so the skeleton is tested alone.
    api = NinjaAPI(urls_namespace="probe")
    errors.install(api)

    @api.post("/echo", auth=scoped("events:read"))
    def echo(request, payload: Echo):
        return {"token": request.api_token.name, "amount": payload.amount}

    @api.get("/boom", auth=scoped("events:read"))
    def boom(request):
        raise RuntimeError("a bug")

    return TestClient(api)


def _post(client, token=None, body=None, header=None):
    headers = {"Authorization": header or f"Bearer {token}"} if (token or header) else {}
    return client.post(
        "/echo", json={"amount": "1.0", "count": 1} if body is None else body, headers=headers
    )


def _error(response):
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "field"} and error["message"]
    return error


@pytest.mark.parametrize("header", [None, "Bearer cab_nope", "Basic dXNlcjpwdw==", "Bearer "])
def test_it_answers_401_in_the_error_shape_without_a_valid_token(header):
    response = _post(_probe_api(), header=header)
    assert response.status_code == 401
    assert _error(response)["code"] == "unauthenticated"


def test_it_answers_403_to_a_token_without_the_operations_scope():
    _, raw = ApiToken.issue("shop", scopes=["balances:read", "transfers:write"])
    response = _post(_probe_api(), raw)
    assert response.status_code == 403
    error = _error(response)
    assert error["code"] == "missing_scope" and "events:read" in error["message"]


def test_it_answers_403_to_a_revoked_token():
    token, raw = ApiToken.issue("shop", scopes=["events:read"])
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    response = _post(_probe_api(), raw)
    assert response.status_code == 403 and _error(response)["code"] == "token_revoked"


def test_it_lets_a_token_with_the_scope_through():
    _, raw = ApiToken.issue("shop", scopes=["events:read"])
    response = _post(_probe_api(), raw)
    assert response.status_code == 200 and response.json()["token"] == "shop"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"amount": "1.0"}, "count"),
        ({"amount": "1.0", "count": "many"}, "count"),
        ("text", "amount"),
    ],
)
def test_it_maps_validation_errors_to_400_with_the_field(body, field):
    _, raw = ApiToken.issue("shop", scopes=["events:read"])
    response = _post(_probe_api(), raw, body=body)
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid" and error.get("field") == field


def test_it_answers_an_unexpected_error_in_the_shape_without_a_traceback():
    _, raw = ApiToken.issue("shop", scopes=["events:read"])
    response = _probe_api().get("/boom", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 500
    assert _error(response)["code"] == "internal_error"
    assert b"Traceback" not in response.content and b"a bug" not in response.content


def test_it_serves_the_openapi_document_and_its_docs_page():
    client = Client()
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200 and document.json()["openapi"].startswith("3.")
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"openapi.json" in docs.content


def test_it_answers_an_unknown_path_in_the_error_shape():
    missing = Client().get("/api/v1/no-such-thing")
    assert missing.status_code == 404 and _error(missing)["code"] == "not_found"


def test_it_answers_malformed_json_with_400():
    _, raw = ApiToken.issue("shop", scopes=["events:read"])
    response = _probe_api().post(
        "/echo",
        data=b"{not json",
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 400 and _error(response)["code"] == "invalid"


def test_it_limits_each_tokens_request_rate(settings):
    from django.core.cache import cache

    cache.clear()
    settings.API_RATE_LIMIT = "2/min"
    first, second = (ApiToken.issue(name, scopes=["addresses:write"])[1] for name in "ab")
    ask = lambda raw: Client().post(  # noqa: E731
        "/api/v1/addresses", {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert [ask(first).status_code for _ in range(3)] == [400, 400, 429]
    limited = ask(first)
    assert _error(limited)["code"] == "rate_limited" and int(limited["Retry-After"]) > 0
    assert ask(second).status_code == 400  # another token has its own count
    settings.API_RATE_LIMIT = ""
    assert ask(first).status_code == 400
