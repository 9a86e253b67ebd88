"""One payment per broadcast on SQLite (no advisory lock), with real processes: a broadcaster
parked mid-send, an operator closing by hand from another process, the node paying for real."""

import json
import time

import pytest

from tests.support import expect_paused, manage_process, run_python, sqlite_child_env


@pytest.fixture
def sqlite_env(tmp_path):
    return sqlite_child_env(tmp_path / "db.sqlite3")


def child(env, *args, timeout=60):
    done = run_python(env, "-m", "tests.broadcast_sqlite_child", *args, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def state(env):
    return json.loads(child(env, "state"))


def broadcaster(env, fault="", **extra):
    return manage_process(dict(env, **extra), "broadcast", "--wallet", "sqlite-btc", fault=fault)


def payments(server, address):
    return [
        e
        for e in server.rpc("listtransactions", "*", 1000, 0, True)
        if e["category"] == "send" and e["address"] == address
    ]


@pytest.fixture
def paying(fresh_node, sqlite_env):
    server = fresh_node()
    server.generate(101)
    address = server.rpc("getnewaddress")  # any address: the payment shows as a send either way
    assert child(sqlite_env, "setup", server.url, address, "5000000").startswith("ready")
    return server, address


def test_it_refuses_to_close_a_send_in_flight_and_pays_once(sqlite_env, paying):
    server, address = paying
    proc = broadcaster(sqlite_env, "broadcast.after_open=pause:8")
    expect_paused(proc, "broadcast.after_open")
    assert state(sqlite_env)["vendor"] == "sqlite"

    assert state(sqlite_env)["interrupted"] == []  # in flight, not interrupted
    assert child(sqlite_env, "close", "never_left").startswith("refused:")
    assert child(sqlite_env, "close", "reached_network", "ab" * 32).startswith("refused:")
    second = broadcaster(sqlite_env)
    out, err = second.communicate(timeout=60)
    assert "broadcasts sent: 0" in out, (out, err)

    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "broadcasts sent: 1" in out, (out, err)
    now = state(sqlite_env)
    assert [b["state"] for b in now["broadcasts"]] == ["broadcasted"]
    assert [o["state"] for o in now["outgoing"]] == ["broadcasted"]
    again = broadcaster(sqlite_env)
    assert "broadcasts sent: 0" in again.communicate(timeout=60)[0]
    assert len(payments(server, address)) == 1


def test_it_lets_a_killed_send_be_closed_only_after_its_lease_and_pays_once(sqlite_env, paying):
    server, address = paying
    short = dict(NODE_RPC_TIMEOUT="1", BROADCAST_LEASE_MARGIN="2")  # a 4 s lease
    proc = broadcaster(sqlite_env, "broadcast.after_open=pause:60", **short)
    expect_paused(proc, "broadcast.after_open")
    proc.kill()
    proc.wait(timeout=10)

    assert child(sqlite_env, "close", "never_left").startswith("refused:")  # the lease still runs
    time.sleep(4.5)
    # Killed before it signed anything (issue 16: signed first): nothing can have left, so it
    # is the machine's to fail on its next run, not listed for a person; once its lease is
    # over a person may still close it.
    assert state(sqlite_env)["interrupted"] == []
    assert child(sqlite_env, "close", "never_left") == "closed"

    out, err = broadcaster(sqlite_env).communicate(timeout=60)
    assert "broadcasts sent: 1" in out, (out, err)
    assert [b["state"] for b in state(sqlite_env)["broadcasts"]] == ["closed_failed", "broadcasted"]
    assert len(payments(server, address)) == 1


def test_it_takes_back_requeued_outgoing_when_a_send_closed_as_never_left_had_paid(
    sqlite_env, paying
):
    server, address = paying
    short = dict(NODE_RPC_TIMEOUT="1", BROADCAST_LEASE_MARGIN="2")
    proc = broadcaster(sqlite_env, "broadcast.after_raw_send=pause:10", **short)
    expect_paused(proc, "broadcast.after_raw_send")  # the node has paid; not booked yet
    time.sleep(4.5)  # the lease is over: to the operator it looks interrupted
    # The operator's node view has not recorded the send: "It never left" goes through.
    assert child(sqlite_env, "close", "never_left", "--blind") == "closed"
    assert [o["state"] for o in state(sqlite_env)["outgoing"]] == ["queued"]

    out, err = proc.communicate(timeout=60)  # the late reply
    after = state(sqlite_env)
    [broadcast] = after["broadcasts"]
    assert (
        broadcast["txid"]
        and broadcast["needs_attention"]
        and "LATE REPLY" in broadcast["last_error"]
    )
    assert [o["state"] for o in after["outgoing"]] == ["broadcasted"]
    out, err = broadcaster(sqlite_env).communicate(timeout=60)
    assert "broadcasts sent: 0" in out, (out, err)
    assert len(payments(server, address)) == 1
