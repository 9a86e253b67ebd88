"""docs/operations.md: the production install written down step by step, the Roles table true
to cryptoadmin/roles.py, and each operation described once."""

import re

from tests.support import REPO

DOC = REPO / "docs" / "operations.md"


def _section(text, heading):
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_it_walks_a_first_install_from_the_environment_file_to_a_credited_deposit():
    steps = _section(DOC.read_text(), "First production install")
    for needed in (
        "/etc/cryptoadmin/env",
        "CRYPTOADMIN_ENV",
        "deploy/manage migrate --noinput",
        "deploy/manage createsuperuser",
        "make serve",
        '{"ok": true}',
        "CSRF_TRUSTED_ORIGINS",
        "NODE_HOSTS",
        "*Currencies → Add*",
        "*Wallets → Add*",
        "rpcpassword=",
        "**Test connection**",
        "*Retire*",
        "*Wallets → Import wallet balance*",
        "*Or a new user id*",
        "*Addresses → Add*",
        "deploy/manage update_confirmations",
    ):
        assert needed in steps, needed


def test_it_says_in_the_roles_table_that_operators_approve_reject_and_cancel():
    from broadcasts.approvals import APPROVE_PERM, CANCEL_PERM
    from cryptoadmin.roles import ROLES

    row = next(line for line in DOC.read_text().splitlines() if line.startswith("| Operator |"))
    for action in ("approve", "reject", "cancel"):
        assert action in row, action
    assert {APPROVE_PERM, CANCEL_PERM} <= set(ROLES["Operator"])
    assert not {APPROVE_PERM, CANCEL_PERM} & set(ROLES["Viewer"])


def test_it_describes_each_operation_once():
    bullets = [
        " ".join(re.findall(r"[\w/]+", line.lower())[:3])
        for line in DOC.read_text().splitlines()
        if line.startswith("- ")
    ]
    repeated = {b for b in bullets if bullets.count(b) > 1}
    assert not repeated, repeated
