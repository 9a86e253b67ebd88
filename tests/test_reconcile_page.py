"""The reconciliation page: reading shows the last recorded reconciliation; recording one
(a node call and a write) is a POST with `ledger.reconcile_wallet`."""

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone
from django_q.models import OrmQ

from tests.support import offline_wallet, run_queued_tasks

pytestmark = pytest.mark.django_db


def _url(wallet):
    return f"/admin/ledger/wallet/{wallet.pk}/reconcile/"


def test_it_writes_nothing_on_a_viewers_get(client, viewer, db_wallet):
    wallet = db_wallet
    client.force_login(viewer)
    response = client.get(_url(wallet))
    assert response.status_code == 200
    wallet.refresh_from_db()
    assert wallet.last_reconciled_at is None and wallet.last_reconciliation in (None, {})
    assert b"Never reconciled" in response.content


def test_it_shows_the_recorded_figures_without_calling_the_node(client, viewer, btc):
    # The node is down: a GET that called it would show the error instead of the figures.
    checked = timezone.now()
    wallet = offline_wallet(
        btc,
        "recorded",
        last_reconciled_at=checked,
        last_reconciliation={
            "wallet_id": 0,
            "node_balance": 700000000,
            "books_balance": 0,
            "uncredited": 200000000,
            "users_balance": 0,
            "pending_outgoing": 0,
            "fees": 0,
            "unaccounted": 500000000,
            "checked_at": checked.isoformat(),
            "missing_deposits": [
                {"address": "addr1", "txids": ["ab" * 32], "received": 1, "credited": 0}
            ],
        },
    )
    client.force_login(viewer)
    page = client.get(_url(wallet)).content.decode()
    assert "could not be asked" not in page
    assert "5.00000000 BTC" in page and "7.00000000" in page and "ab" * 32 in page
    wallet.refresh_from_db()
    assert wallet.last_reconciled_at == checked
    assert 'name="reconcile"' not in page  # no button for a Viewer


def test_it_refuses_a_viewers_post_and_records_nothing(client, viewer, db_wallet):
    wallet = db_wallet
    client.force_login(viewer)
    assert client.post(_url(wallet), {"reconcile": "1"}).status_code == 403
    wallet.refresh_from_db()
    assert wallet.last_reconciled_at is None
    assert wallet.reconcile_requested_at is None and not OrmQ.objects.exists()  # nothing queued


# "Reconcile now" queues the full scan (a node read of every address) and comes back at once;
# the worker records the result (issue 20: the POST took seconds at a large node). This test
# used to assert the result right after the POST; it now runs the queued task first.
def test_it_records_a_reconciliation_on_an_operators_post(client, operator, wallet):
    client.force_login(operator)
    assert 'name="reconcile"' in client.get(_url(wallet)).content.decode()
    response = client.post(_url(wallet), {"reconcile": "1"})
    assert response.status_code == 302 and response["Location"] == _url(wallet)
    assert run_queued_tasks(group="reconcile")
    wallet.refresh_from_db()
    assert wallet.last_reconciled_at is not None and "unaccounted" in wallet.last_reconciliation
    assert LogEntry.objects.filter(object_id=str(wallet.pk), user=operator).exists()
    page = client.get(_url(wallet)).content.decode()
    assert 'id="difference"' in page


def _double():
    """A node that records every call and answers getbalance and listreceivedbyaddress."""
    from tests.rpc_double import RpcDouble

    def answer(request):
        result = {"getbalance": 2.5, "listreceivedbyaddress": []}.get(request.get("method"))
        return {"result": result, "error": None, "id": request.get("id")}

    return RpcDouble(answer).start()


@pytest.fixture
def watched(btc):
    double = _double()
    from ledger.models import Wallet

    wallet = Wallet.objects.create(
        currency=btc, name="watched", backend="bitcoind", backend_settings={"url": double.url}
    )
    yield wallet, double
    double.stop()


def test_it_queues_the_scan_and_returns_without_calling_the_node(client, operator, watched):
    wallet, double = watched
    client.force_login(operator)
    response = client.post(_url(wallet), {"reconcile": "1"}, follow=True)
    assert response.status_code == 200
    assert double.requests == []  # the node is the worker's business
    (queued,) = OrmQ.objects.all()
    assert queued.task["func"] == "ledger.tasks.reconcile_wallet_task"
    wallet.refresh_from_db()
    assert wallet.reconcile_requested_at is not None
    assert wallet.reconcile_requested_by == operator and wallet.last_reconciled_at is None
    page = response.content.decode()
    assert "Reconciliation queued" in page
    assert 'id="reconcile-running"' in page and operator.username in page


def test_it_records_the_result_and_clears_the_request_in_the_task(client, operator, watched):
    wallet, double = watched
    client.force_login(operator)
    client.post(_url(wallet), {"reconcile": "1"})
    (result,) = run_queued_tasks(group="reconcile")
    methods = [r.get("method") for r in double.requests]
    assert "listreceivedbyaddress" in methods and "getbalance" in methods
    wallet.refresh_from_db()
    assert wallet.reconcile_requested_at is None and wallet.reconcile_requested_by is None
    assert wallet.last_reconciliation["node_balance"] == 250_000_000 == result["node_balance"]
    assert LogEntry.objects.filter(
        object_id=str(wallet.pk), user=operator, change_message__startswith="Reconciled"
    ).exists()
    page = client.get(_url(wallet)).content.decode()
    assert 'id="reconcile-running"' not in page and "2.50000000 BTC" in page


def test_it_queues_nothing_more_while_a_scan_is_pending(client, operator, watched):
    wallet, _ = watched
    client.force_login(operator)
    client.post(_url(wallet), {"reconcile": "1"})
    wallet.refresh_from_db()
    first = wallet.reconcile_requested_at
    response = client.post(_url(wallet), {"reconcile": "1"}, follow=True)  # a double click
    assert OrmQ.objects.count() == 1
    wallet.refresh_from_db()
    assert wallet.reconcile_requested_at == first
    assert "already running" in response.content.decode()


def test_it_queues_again_when_the_pending_request_outlived_the_task_timeout(
    operator, watched, settings
):
    from ledger.models import Wallet
    from ledger.reconcile import request_reconciliation

    wallet, _ = watched
    assert request_reconciliation(wallet, by=operator) is True
    assert request_reconciliation(wallet, by=operator) is False
    # The worker was killed: its request would block every later one without the timeout.
    old = timezone.now() - timezone.timedelta(seconds=settings.Q_CLUSTER["timeout"] + 1)
    Wallet.objects.filter(pk=wallet.pk).update(reconcile_requested_at=old)
    assert request_reconciliation(wallet, by=operator) is True
    assert OrmQ.objects.count() == 2
    wallet.refresh_from_db()
    assert wallet.reconcile_requested_at > old


def test_it_shows_the_pending_request_on_a_get_that_writes_nothing(client, viewer, operator, btc):
    from ledger.models import Wallet

    since = timezone.now() - timezone.timedelta(seconds=30)
    wallet = offline_wallet(  # a GET that called the node would fail on this one
        btc, "pending", reconcile_requested_at=since, reconcile_requested_by=operator
    )
    client.force_login(viewer)
    page = client.get(_url(wallet)).content.decode()
    assert 'id="reconcile-running"' in page and operator.username in page
    assert "Never reconciled" in page  # no finished result yet
    fresh = Wallet.objects.get(pk=wallet.pk)
    assert (fresh.reconcile_requested_at, fresh.last_reconciled_at) == (since, None)


def test_it_records_a_failed_scan_and_clears_the_request(client, operator, btc):
    from ledger.backends import BackendError

    wallet = offline_wallet(btc, "down")
    client.force_login(operator)
    client.post(_url(wallet), {"reconcile": "1"})
    with pytest.raises(BackendError):
        run_queued_tasks(group="reconcile")
    wallet.refresh_from_db()
    assert wallet.reconcile_requested_at is None and wallet.last_reconcile_error
    assert wallet.last_reconciled_at is None
    page = client.get(_url(wallet)).content.decode()
    assert 'id="reconcile-error"' in page
    client.post(_url(wallet), {"reconcile": "1"})  # it can be asked again at once
    assert OrmQ.objects.count() == 1


def test_it_reads_without_recording_and_records_only_with_the_permission(viewer, operator, wallet):
    from django.core.exceptions import PermissionDenied

    from ledger.reconcile import reconcile, record_reconciliation

    assert reconcile(wallet).wallet_id == wallet.pk
    with pytest.raises(PermissionDenied):
        record_reconciliation(wallet, by=viewer)
    wallet.refresh_from_db()
    assert wallet.last_reconciled_at is None
    recorded = record_reconciliation(wallet, by=operator)
    wallet.refresh_from_db()
    assert wallet.last_reconciliation["unaccounted"] == recorded.unaccounted


def test_it_rolls_the_request_back_when_the_task_cannot_be_queued(operator, watched, monkeypatch):
    import django_q.tasks

    from ledger.reconcile import request_reconciliation

    wallet, _ = watched

    def broker_down(*args, **kwargs):
        raise RuntimeError("broker down")

    monkeypatch.setattr(django_q.tasks, "async_task", broker_down)
    with pytest.raises(RuntimeError):
        request_reconciliation(wallet, by=operator)
    wallet.refresh_from_db()
    # No marker without its task: it would block every request until the queue's timeout.
    assert wallet.reconcile_requested_at is None


@pytest.mark.django_db(transaction=True)
def test_it_is_run_by_a_real_worker(operator, btc, child_env, tmp_path):
    import subprocess

    from ledger.models import Wallet
    from ledger.reconcile import request_reconciliation
    from tests.prodserver import stop
    from tests.support import PYTHON, REPO, wait_until

    double = _double()
    wallet = Wallet.objects.create(
        currency=btc, name="worked", backend="bitcoind", backend_settings={"url": double.url}
    )
    log = tmp_path / "cluster.log"
    cluster = subprocess.Popen(
        [PYTHON, "manage.py", "qcluster"],
        cwd=REPO,
        env=dict(child_env, Q_WORKERS="1"),
        start_new_session=True,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )
    try:
        assert request_reconciliation(wallet, by=operator) is True

        def recorded():
            wallet.refresh_from_db()
            return wallet.last_reconciled_at is not None and wallet.reconcile_requested_at is None

        wait_until(recorded, timeout=60, interval=0.5, what=f"the worker's reconciliation ({log})")
        assert wallet.last_reconciliation["node_balance"] == 250_000_000
    finally:
        stop(cluster)  # the leader only: a signal to its whole group hangs its shutdown
        double.stop()


def test_it_refreshes_itself_while_a_scan_runs(client, operator, db_wallet):
    wallet = db_wallet
    client.force_login(operator)
    client.post(_url(wallet), {"reconcile": "1"})
    page = client.get(_url(wallet)).content.decode()
    assert '<meta http-equiv="refresh"' in page and "Reload this page" not in page


def test_it_shows_network_fees_paid_as_a_positive_amount(client, viewer, btc):
    figures = dict.fromkeys(("wallet_id", "node_balance", "uncredited", "unaccounted"), 0)
    figures.update(books_balance=89600, users_balance=100000, pending_outgoing=0, fees=-10400)
    wallet = offline_wallet(btc, "fees", last_reconciliation={**figures, "missing_deposits": []})
    client.force_login(viewer)
    page = client.get(_url(wallet)).content.decode()
    assert 'id="fees-paid">0.00010400 BTC' in page and "-0.00010400" not in page
