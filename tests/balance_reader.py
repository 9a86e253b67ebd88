"""A second process serving reads through its own balance cache (used by
test_balance_invalidation). Prints one JSON line when ready, then one when the balance changes."""

import json
import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devtools.settings_test")
django.setup()

from balances.cache import get_balance, get_cache, reset_cache  # noqa: E402


def main(user_id, currency_id, deadline_s):
    cache = get_cache()
    first = get_balance(user_id, currency_id, 201)
    for _ in range(50):  # prove reads are served from memory before announcing readiness
        get_balance(user_id, currency_id, 201)
    print(json.dumps({"ready": True, "value": first, "stats": cache.stats()}), flush=True)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = get_balance(user_id, currency_id, 201)
        if value != first:
            print(
                json.dumps({"value": value, "seen_at": time.time(), "stats": cache.stats()}),
                flush=True,
            )
            break
        time.sleep(0.0005)  # measurement resolution, not synchronisation
    reset_cache()  # closes the LISTEN connection before exiting


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
