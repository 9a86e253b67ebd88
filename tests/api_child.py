"""A child process that sends one API request through Django's full stack (the test client, no
server) and prints the answer: tests kill it at a fault point between the commit and the reply.
Usage: python tests/api_child.py METHOD PATH TOKEN IDEMPOTENCY_KEY JSON_BODY"""

import sys

import django

django.setup()

from django.test import Client  # noqa: E402

method, path, token, key, body = sys.argv[1:6]
response = getattr(Client(), method.lower())(
    path,
    body,
    content_type="application/json",
    HTTP_AUTHORIZATION=f"Bearer {token}",
    HTTP_IDEMPOTENCY_KEY=key,
)
print(response.status_code, response.content.decode(), flush=True)
