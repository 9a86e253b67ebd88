"""Password guessing on the admin login page is locked out by django-axes, counted per
(username, address) and per address, with a far higher username-wide limit a known place
passes. The attacker posts to the real login page."""

import pytest
from django.core.management import call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db

LIMIT = override_settings(AXES_FAILURE_LIMIT=3)


def _login(client, username, password, ip="10.0.0.1", **extra):
    return client.post(
        "/admin/login/",
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=ip,
        **extra,
    )


def _logged_in_as(client, user):
    return client.session.get("_auth_user_id") == str(user.pk)


@LIMIT
def test_it_locks_out_an_address_after_repeated_failures(client, operator):
    for _ in range(2):
        assert _login(client, "operator", "wrong").status_code == 200
    # The failure that reaches the limit already answers with the lock-out page (django-axes).
    assert _login(client, "operator", "wrong").status_code == 429
    response = _login(client, "operator", "pw-operator")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


@LIMIT
def test_it_lets_no_anonymous_caller_lock_a_person_out(client, superuser):
    # Wrong passwords for the superuser from one address, then from fresh IPv6 addresses.
    for _ in range(5):
        _login(client, "root", "wrong", ip="203.0.113.66")
    for i in range(10):
        _login(client, "root", "wrong", ip=f"2001:db8::{i + 1:x}")
    response = _login(client, "root", "pw-root", ip="198.51.100.10")
    assert response.status_code == 302
    assert _logged_in_as(client, superuser)


@LIMIT
@override_settings(LOGIN_USERNAME_MAX_FAILURES=6)
def test_it_locks_a_username_guessed_from_many_addresses_except_from_a_known_place(
    client, operator
):
    assert _login(client, "operator", "pw-operator", ip="198.51.100.1").status_code == 302
    client.logout()
    for i in range(6):
        _login(client, "operator", "wrong", ip=f"2001:db8::{i + 1:x}")
    assert _login(client, "operator", "pw-operator", ip="203.0.113.9").status_code == 429
    response = _login(client, "operator", "pw-operator", ip="198.51.100.1")
    assert response.status_code == 302
    assert _logged_in_as(client, operator)


@LIMIT
def test_it_lets_a_correct_password_in_below_the_limit(client, operator):
    _login(client, "operator", "wrong")
    response = _login(client, "operator", "pw-operator")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(operator.pk)


@LIMIT
def test_it_lets_one_address_lock_out_only_itself_not_every_user(client, django_user_model):
    users = [
        django_user_model.objects.create_user(f"staff{i}", password=f"pw-staff{i}", is_staff=True)
        for i in range(6)
    ]
    # One address tries every username, again and again.
    for _ in range(3):
        for user in users:
            _login(client, user.username, "wrong", ip="203.0.113.7")
    assert _login(client, "staff0", "pw-staff0", ip="203.0.113.7").status_code == 429
    # From their own addresses every user still signs in, the first one it hammered included.
    for i, user in enumerate(users):
        client.logout()
        response = _login(client, user.username, f"pw-staff{i}", ip=f"198.51.100.{i + 1}")
        assert response.status_code == 302, (user.username, response.status_code)
        assert _logged_in_as(client, user)


@LIMIT
def test_it_ignores_x_forwarded_for_without_a_trusted_proxy(client, operator):
    # The attacker invents a new X-Forwarded-For for every guess; REMOTE_ADDR is what counts.
    for i in range(3):
        _login(client, "someone", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert (
        _login(client, "operator", "pw-operator", HTTP_X_FORWARDED_FOR="192.0.2.200").status_code
        == 429
    )


@LIMIT
@override_settings(TRUSTED_PROXY_COUNT=1)
def test_it_counts_the_address_the_trusted_proxy_saw(client, operator):
    # Behind one proxy every request comes from the proxy's address; the client is the entry
    # the proxy appended (the right-most), whatever the client put before it.
    for i in range(3):
        _login(
            client,
            "someone",
            "wrong",
            ip="127.0.0.1",
            HTTP_X_FORWARDED_FOR=f"1.1.1.{i}, 192.0.2.66",
        )
    locked = _login(
        client, "operator", "pw-operator", ip="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.66"
    )
    assert locked.status_code == 429
    other = _login(
        client, "operator", "pw-operator", ip="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.67"
    )
    assert other.status_code == 302
    assert _logged_in_as(client, operator)


@LIMIT
def test_it_shows_a_lockout_page_saying_what_happened_and_how_to_unlock(client, operator):
    for _ in range(3):
        _login(client, "operator", "wrong")
    response = _login(client, "operator", "pw-operator")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed sign-ins" in page
    assert "15 minutes" in page
    assert "manage.py axes_reset_username operator" in page
    assert "manage.py axes_reset_ip 10.0.0.1" in page
    assert 'id="site-name"' in page  # the admin's own look


@LIMIT
def test_it_unlocks_with_the_axes_reset_commands(client, operator):
    for _ in range(3):
        _login(client, "operator", "wrong", ip="10.0.2.1")
    assert _login(client, "operator", "pw-operator", ip="10.0.2.1").status_code == 429
    call_command("axes_reset_username", "operator")
    response = _login(client, "operator", "pw-operator", ip="10.0.2.1")
    assert response.status_code == 302
    assert _logged_in_as(client, operator)


def test_it_never_stores_the_password_or_the_code_of_a_failed_sign_in(client, operator):
    from axes.models import AccessAttempt

    client.post(
        "/admin/login/",
        {
            "username": "operator",
            "password": "hunter2-secret",
            "otp_token": "rc-7h3k9x",
            "next": "/admin/",
        },
        REMOTE_ADDR="10.0.0.1",
    )
    attempt = AccessAttempt.objects.get()
    assert attempt.failures_since_start == 1
    assert "hunter2-secret" not in attempt.post_data
    assert "rc-7h3k9x" not in attempt.post_data  # a recovery code typed with a mistyped password
