"""broadcast and check_interrupted_broadcasts commands, the schedule and the task."""

import io
import subprocess

import pytest
from django.core.management import CommandError, call_command

from broadcasts.broadcaster import Broadcaster
from broadcasts.models import Broadcast
from broadcasts.withdrawals import send_external
from tests.broadcast_helpers import end_lease
from tests.support import PYTHON, REPO, SendOutcomeUnknown, credit_user

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args):
    out = io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=io.StringIO())
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def test_it_broadcasts_and_prints_the_result(wallet, node):
    send_external(credit_user(wallet, "gina", 10**6), node.rpc("getnewaddress"), 50_000)
    code, out = run("broadcast", "--wallet", wallet.name)
    broadcast = Broadcast.objects.get()
    assert code == 0 and "broadcasts sent: 1" in out and broadcast.txid in out
    assert f"total fee: {wallet.currency.amount(broadcast.fee)}" in out
    assert "base units" not in out and f"fee {wallet.currency.amount(broadcast.fee)}" in out
    code, out = run("broadcast", "--wallet", wallet.name)
    assert code == 0 and "nothing to send" in out and "broadcasts sent: 0" in out
    with pytest.raises(CommandError, match="no wallet named"):
        call_command("broadcast", "--wallet", "nope")


def test_it_lists_interrupted_broadcasts_and_exits_1(wallet, node, child_env):
    check = [PYTHON, "manage.py", "check_interrupted_broadcasts"]
    clean = subprocess.run(
        check, cwd=REPO, env=child_env, capture_output=True, text=True, timeout=60
    )
    assert (clean.returncode, clean.stdout.strip()) == (0, "no interrupted broadcasts")
    send_external(credit_user(wallet, "hal", 10**6), node.rpc("getnewaddress"), 50_000)
    Broadcaster(wallet, backend=SendOutcomeUnknown(wallet)).run()
    broadcast = Broadcast.objects.get()
    in_flight = subprocess.run(
        check, cwd=REPO, env=child_env, capture_output=True, text=True, timeout=60
    )
    assert in_flight.returncode == 0  # its lease runs: still sending, not interrupted
    end_lease(broadcast)

    dirty = subprocess.run(
        check, cwd=REPO, env=child_env, capture_output=True, text=True, timeout=60
    )

    assert (
        dirty.returncode == 1 and broadcast.label in dirty.stdout and "read timeout" in dirty.stdout
    )
    code, out = run("broadcast", "--wallet", wallet.name)
    assert code == 2 and "refusing to broadcast" in out and f"#{broadcast.pk}" in out


def test_it_lists_broadcasts_needing_attention_and_exits_1(wallet):
    from django.utils import timezone

    Broadcast.objects.create(
        wallet=wallet,
        state="broadcasted",
        label="late-9",
        txid="9a" * 32,
        opened_at=timezone.now(),
        needs_attention=True,
        last_error="LATE REPLY: closed as never left, but the node paid it\nearlier error",
    )
    code, out = run("check_interrupted_broadcasts")
    assert (
        code == 1
        and "late-9" in out
        and "NEEDS ATTENTION: LATE REPLY" in out
        and "earlier error" not in out
    )


def test_it_registers_its_schedule_idempotently_and_the_task_runs_every_wallet(wallet, node):
    from django.apps import apps
    from django_q.models import Schedule

    from broadcasts.tasks import broadcast_all_wallets
    from ops.scheduler import register_schedules

    for _ in range(2):
        register_schedules(sender=apps.get_app_config("ops"))
    schedule = Schedule.objects.get(name="broadcasts.broadcast")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "broadcasts.tasks.broadcast_all_wallets",
        "I",
        1,
    )
    send_external(credit_user(wallet, "ivy", 10**6), node.rpc("getnewaddress"), 50_000)
    messages = broadcast_all_wallets()
    assert any("sent 1 outgoing" in m for m in messages)
    assert Broadcast.objects.get().state == Broadcast.State.BROADCASTED
