"""What every Django process of the project pays to start: the suite runs hundreds of them
(broadcasters, walletnotify, schedulers, the demo), and so do production's workers."""

import subprocess

from tests.support import PYTHON, REPO


def test_it_starts_django_without_importing_the_graphql_schema(child_env):
    # The GraphQL library is loaded by the /graphql view, on its first request; the admin and
    # the commands do not need it (it was ~40% of a management command's start-up CPU).
    probe = (
        "import django, sys; django.setup(); "
        "print(sorted(m for m in sys.modules if m.startswith(('strawberry', 'balances.schema'))))"
    )
    out = subprocess.run(
        [PYTHON, "-c", probe], cwd=REPO, env=child_env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
