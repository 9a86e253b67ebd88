"""A broadcaster process that starts Django once and then runs `manage.py broadcast --wallet W`
once per line "go" on its stdin, answering each run with one JSON line on stdout.

The race test releases four of these at the same moment, round after round: four real
processes on one database, as with four cold `manage.py broadcast` starts, but warm, so they
reach the broadcaster together instead of one after another as their start-ups finish.

python -m tests.broadcast_race_child WALLET
"""

import io
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devtools.settings_test")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402


def main(wallet: str):
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        out, err, code = io.StringIO(), io.StringIO(), 0
        try:
            call_command("broadcast", "--wallet", wallet, stdout=out, stderr=err)
        except SystemExit as exc:
            code = exc.code
        # Each run on a new connection, as a new process would have.
        connections.close_all()
        print(json.dumps({"out": out.getvalue(), "err": err.getvalue(), "code": code}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
