"""The API's money requests on SQLite (the default database of `make run`), with real processes
sharing one file: the same key sent by two at once moves money once, and concurrent batches
never take an account below zero (SQLite serialises writers)."""

import sqlite3
import subprocess

from tests.support import PYTHON, REPO, run_python, sqlite_child_env


def child(env, *args):
    return subprocess.Popen(
        [PYTHON, "-m", "tests.api_sqlite_child", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def state(path):
    """Read straight from the file: the internal entries and alice's 201 running total."""
    with sqlite3.connect(path) as db:
        (internal,) = db.execute(
            "SELECT count(*) FROM ledger_transaction WHERE kind = 'internal'"
        ).fetchone()
        (alice,) = db.execute(
            "SELECT b.balance FROM ledger_accountbalance b JOIN ledger_account a "
            "ON a.id = b.account_id WHERE a.user_id = 'alice' AND a.code = 201"
        ).fetchone()
    return {"internal": internal, "alice": alice}


def answers(procs):
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr[-2000:]
        last = stdout.strip().splitlines()[-1]  # after the fault point's "paused" line
        status, _, body = last.partition(" ")
        out.append((int(status), body))
    return out


def test_it_moves_money_once_per_key_and_never_below_zero_on_sqlite(tmp_path):
    path = tmp_path / "api.sqlite3"
    env = sqlite_child_env(path)
    done = run_python(env, "-m", "tests.api_sqlite_child", "setup")
    assert done.returncode == 0, done.stderr[-2000:]
    token = done.stdout.strip().splitlines()[-1]
    # Each request holds its transaction open a moment, so the two overlap.
    paused = dict(env, CRYPTOADMIN_FAULT="api.idempotency.before_commit=pause:0.3")
    same_key = answers([child(paused, "send", token, "k-1", "0.4") for _ in range(2)])
    assert [status for status, _ in same_key] == [201, 201] and same_key[0][1] == same_key[1][1]
    assert state(path) == {"internal": 1, "alice": 60_000_000}
    racing = answers([child(paused, "send", token, f"k-{i}", "0.4") for i in (2, 3)])
    assert sorted(status for status, _ in racing) == [201, 422]
    assert state(path) == {"internal": 2, "alice": 20_000_000}
