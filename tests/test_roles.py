"""Viewer, Operator and Admin groups exist after migrate with the right permissions."""

import pytest
from django.contrib.auth.models import Group

from cryptoadmin.roles import ADMINISTER, OPERATE, ROLES, VIEW

# The migration makes the groups; a transactional test run earlier on this worker (random order,
# several workers) flushes them, and `roles` then puts back exactly what the migration would.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("roles")]


def _perms(name):
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=name).permissions.all()
    }


def test_it_creates_the_three_roles_with_their_permissions():
    assert _perms("Viewer") == set(VIEW)
    assert _perms("Operator") == set(VIEW + OPERATE)
    assert _perms("Admin") == set(ROLES["Admin"])


def test_it_gives_viewers_no_change_and_no_money_permission():
    assert not [p for p in _perms("Viewer") if not p.split(".")[1].startswith("view_")]
    assert not set(OPERATE + ADMINISTER) & _perms("Viewer")


def test_it_keeps_imports_and_queueing_for_admins():
    money = {"ledger.import_wallet_balance", "broadcasts.queue_outgoingtransaction"}
    assert money <= _perms("Admin")
    assert not money & _perms("Operator")


def test_it_applies_role_permissions_to_members(django_user_model, roles):
    user = django_user_model.objects.create_user("op", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Operator"))
    assert user.has_perm("broadcasts.close_broadcast_by_hand")
    assert not user.has_perm("ledger.import_wallet_balance")


def test_it_lets_operators_decide_withdrawals_and_only_admins_set_their_rules(
    operator, viewer, admin
):
    decide = ("broadcasts.approve_outgoingtransaction", "broadcasts.cancel_outgoingtransaction")
    rules = ("broadcasts.change_withdrawalrule",)
    assert all(operator.has_perm(p) for p in decide)
    assert not any(viewer.has_perm(p) for p in decide + rules)
    assert not any(operator.has_perm(p) for p in rules)
    assert all(admin.has_perm(p) for p in decide + rules)
    assert viewer.has_perm("broadcasts.view_withdrawalrule") and viewer.has_perm("ops.view_alert")


# Personas hold their role in transactional tests too, whose flush wipes the groups the
# migration made: each one runs after another transactional test in one order or the other.
@pytest.mark.django_db(transaction=True)
def test_it_makes_each_persona_a_member_of_its_role_only(viewer, operator, admin):
    assert [list(u.groups.values_list("name", flat=True)) for u in (viewer, operator, admin)] == [
        ["Viewer"],
        ["Operator"],
        ["Admin"],
    ]
    assert not (viewer.user_permissions.exists() or operator.user_permissions.exists())
    assert viewer.has_perm("ledger.view_wallet") and not viewer.has_perm("ledger.rescan_wallet")
    assert operator.has_perm("broadcasts.close_broadcast_by_hand")
    assert not operator.has_perm("ledger.import_wallet_balance")
    assert admin.has_perm("ledger.import_wallet_balance") and not admin.is_superuser


@pytest.mark.django_db(transaction=True)
def test_it_gives_the_roles_their_permissions_in_a_transactional_test(roles):
    assert _perms("Viewer") == set(VIEW)
    assert _perms("Operator") == set(VIEW + OPERATE)
    assert _perms("Admin") == set(ROLES["Admin"])
