"""Users who really are in the roles the migration creates (Viewer, Operator, Admin).

The `viewer`/`operator` personas of conftest are plain staff users in no group, granted
permissions one by one; security tests act as a member of the real group instead, so they
fail when the roles table gives a group more than its name says."""
ROLE_PASSWORD = "pw-role-member"


def member_of(role: str, username: str | None = None):
    """A staff user whose only permissions come from the group `role`."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username or f"{role.lower()}-member", password=ROLE_PASSWORD,
                                                is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def client_as(client, role: str, username: str | None = None):
    """`client`, signed in as a fresh member of `role`; returns (client, user)."""
    user = member_of(role, username)
    client.force_login(user)
    return client, user
