"""A second process asking /graphql with an API token through its own caches (used by
test_balances_reference). Prints one JSON line once its requests run no SQL, then one when the
token is refused."""

import json
import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devtools.settings_test")
django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from balances.cache import get_cache, reset_cache  # noqa: E402

QUERY = 'query { user(id: "%s") { currencies { id balance } } }'


def main(raw_token, user_id, deadline_s):
    client, cache = Client(), get_cache()
    body = {"query": QUERY % user_id}
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_token}"}

    def ask():
        with CaptureQueriesContext(connection) as captured:
            status = client.post("/graphql", body, content_type="application/json", **headers)
        return status.status_code, len(captured)

    deadline = time.monotonic() + deadline_s
    status, queries = ask()
    while queries and time.monotonic() < deadline:  # until the notifications of the set-up
        time.sleep(0.05)  # have arrived and every row is cached
        status, queries = ask()
    ready = {"ready": True, "status": status, "queries": queries}
    print(json.dumps({**ready, "reference": cache.reference.invalidations}), flush=True)
    while time.monotonic() < deadline:
        status, queries = ask()
        if status != 200:
            print(json.dumps({"status": status, "seen_at": time.time()}), flush=True)
            break
        time.sleep(0.0005)  # measurement resolution, not synchronisation
    print(json.dumps({"reference": cache.reference.invalidations}), flush=True)
    reset_cache()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
