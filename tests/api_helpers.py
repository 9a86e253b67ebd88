"""Requests to /api/v1/ through the Django test client (not a test module)."""

import json
import threading
import uuid

from django.test import Client

from balances.models import ApiToken


def token(*scopes, name="shop"):
    return ApiToken.issue(name, scopes=list(scopes))[1]


# One client per thread for every call: a new one loads the whole middleware stack again
# (whitenoise indexes every static file), several times the cost of the request itself.
_local = threading.local()


def _client():
    if getattr(_local, "client", None) is None:
        _local.client = Client()
    return _local.client


def call(method, path, raw_token, body=None, key=None, client=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_token}"}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    client = client or _client()
    if method == "GET":
        return client.get(path, **headers)
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return getattr(client, method.lower())(path, data, content_type="application/json", **headers)


def new_key():
    return str(uuid.uuid4())


def move(from_user, from_account, to_user, to_account, amount, label=""):
    return {
        "from": {"user": from_user, "account": from_account},
        "to": {"user": to_user, "account": to_account},
        "amount": amount,
        "label": label,
    }


def error(response):
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) <= {"code", "message", "field"}
    return body["error"]
