"""Who changed the money settings (issue 13, point 8): changes made through the admin, as the
roles make them, are recorded with the user, the time and before/after values, secrets masked,
and every role can read them in the admin."""

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, Permission

from balances.models import ApiToken
from ledger.models import Wallet
from tests.support import make_currency, member_of

pytestmark = pytest.mark.django_db

SECRETS = ("s3cret-api-key-123456", "pin-987654", "rpcpass-555")


@pytest.fixture
def admin_user(roles):
    # The Admin persona under a name of its own: the log page must show who acted.
    return member_of("Admin", "alice", password="pw-alice")


def _entries(obj):
    return LogEntry.objects.get_for_object(obj).order_by("timestamp")


def test_it_records_who_changed_a_currency_threshold_and_from_what(client, admin_user):
    btc = make_currency("BTC", crediting_threshold=2, polling_threshold=4)
    client.force_login(admin_user)
    response = client.post(
        f"/admin/ledger/currency/{btc.pk}/change/",
        {
            "code": "BTC",
            "name": "BTC",
            "decimals": 8,
            "enabled": "on",
            "crediting_threshold": 1,
            "polling_threshold": 4,
            "network": "regtest",
        },
        REMOTE_ADDR="10.20.30.40",
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = _entries(btc).last()
    assert entry.action == LogEntry.Action.UPDATE
    assert entry.actor == admin_user
    assert entry.remote_addr == "10.20.30.40"
    assert entry.changes_dict == {"crediting_threshold": ["2", "1"]}
    assert entry.timestamp is not None


def _add_wallet_with_secrets(client, currency, **settings):
    """Adds the block.io wallet "cold" through the admin, every secret of SECRETS in it."""
    backend_settings = {
        "api_key": SECRETS[0],
        "pin": SECRETS[1],
        "base_url": f"http://rpc:{SECRETS[2]}@127.0.0.1:1/",
        **settings,
    }
    return client.post(
        "/admin/ledger/wallet/add/",
        {
            "name": "cold",
            "currency": currency.pk,
            "backend": "blockio",
            "enabled": "on",
            **backend_settings,  # the form's fields, one per setting
        },
    )


def test_it_records_a_new_wallet_with_its_secrets_masked(client, admin_user):
    btc = make_currency("BTC")
    client.force_login(admin_user)
    response = _add_wallet_with_secrets(client, btc, network="BTCTEST")
    assert response.status_code == 302, response.content.decode()[:3000]
    wallet = Wallet.objects.get(name="cold")
    entry = _entries(wallet).get()
    assert (entry.action, entry.actor) == (LogEntry.Action.CREATE, admin_user)
    recorded = str(entry.changes) + str(entry.serialized_data) + str(entry.additional_data)
    for secret in SECRETS:
        assert secret not in recorded
    assert (
        "BTCTEST" in entry.changes_dict["backend_settings"][1]
    )  # what is not secret stays readable
    assert "127.0.0.1:1" in entry.changes_dict["backend_settings"][1]


def test_it_records_api_token_issue_and_revocation(client, admin_user):
    client.force_login(admin_user)
    client.post(
        "/admin/balances/apitoken/add/", {"name": "wallets app", "scopes": ["balances:read"]}
    )
    token = ApiToken.objects.get(name="wallets app")
    response = client.post(
        "/admin/balances/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    created, revoked = _entries(token)
    assert (created.action, created.actor) == (LogEntry.Action.CREATE, admin_user)
    assert token.token_hash not in str(created.changes)
    assert revoked.actor == admin_user
    assert revoked.changes_dict["revoked_by"] == [None, str(admin_user)]


def test_it_records_group_permission_changes(client, superuser, roles):
    viewer_group = Group.objects.get(name="Viewer")
    before = list(viewer_group.permissions.values_list("pk", flat=True))
    added = Permission.objects.get(content_type__app_label="ledger", codename="change_currency")
    client.force_login(superuser)
    response = client.post(
        f"/admin/auth/group/{viewer_group.pk}/change/",
        {"name": "Viewer", "permissions": [*before, added.pk]},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = _entries(viewer_group).last()
    assert entry.actor == superuser
    assert entry.changes_dict["permissions"]["operation"] == "add"
    assert entry.changes_dict["permissions"]["objects"] == [str(added)]


def test_it_shows_the_log_to_a_viewer_with_secrets_masked_and_nothing_to_change(
    client, admin_user, viewer
):
    btc = make_currency("BTC")
    client.force_login(admin_user)
    _add_wallet_with_secrets(client, btc)
    client.force_login(viewer)
    listing = client.get("/admin/auditlog/logentry/")
    assert listing.status_code == 200
    assert "cold" in listing.content.decode()
    entry = _entries(Wallet.objects.get(name="cold")).get()
    detail = client.get(f"/admin/auditlog/logentry/{entry.pk}/change/")
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "alice" in page
    for secret in SECRETS:
        assert secret not in page
    assert (
        client.post(f"/admin/auditlog/logentry/{entry.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert LogEntry.objects.filter(pk=entry.pk).exists()


def test_it_does_not_show_the_log_to_non_staff(client, outsider):
    client.force_login(outsider)
    assert client.get("/admin/auditlog/logentry/").status_code == 302


def test_it_records_second_factor_enrolment_and_reset_without_keys(client, operator):
    from django.core.management import call_command
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client.post(
        "/admin/login/", {"username": "operator", "password": "pw-operator", "next": "/admin/"}
    )
    client.get("/admin/second-factor/")
    device = TOTPDevice.objects.get(user=operator)
    code = f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"
    client.post("/admin/second-factor/", {"code": code})
    entries = LogEntry.objects.filter(
        content_type__model="totpdevice", object_pk=str(device.pk)
    ).order_by("pk")
    assert [(e.action, e.actor) for e in entries] == [
        (LogEntry.Action.CREATE, operator),
        (LogEntry.Action.UPDATE, operator),
    ]
    assert entries[1].changes_dict == {"confirmed": ["False", "True"]}
    assert device.key not in str([e.changes for e in entries])
    call_command("reset_second_factor", "operator")
    assert (
        LogEntry.objects.filter(
            content_type__model="totpdevice",
            object_pk=str(device.pk),
            action=LogEntry.Action.DELETE,
        ).count()
        == 1
    )


@pytest.mark.django_db
def test_it_labels_a_withdrawal_rule_change_in_base_units_in_the_history():
    """The rule's amounts are edited in base units: the history entry says so beside the
    figures, so nobody reads 150000 as coins."""
    from broadcasts.models import WithdrawalRule
    from tests.support import make_currency

    rule = WithdrawalRule.objects.create(currency=make_currency("BTC"), max_fee=100_000)
    rule.max_fee = 150_000
    rule.save()
    changes = _entries(rule).last().changes_display_dict
    assert changes == {"max fee (base units)": ["100000", "150000"]}
