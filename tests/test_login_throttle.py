import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def _login(client, username, password, ip="10.0.0.1"):
    return client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"},
                       REMOTE_ADDR=ip)


@override_settings(LOGIN_MAX_FAILURES=3)
def test_it_locks_out_an_address_after_repeated_failures(client, operator):
    for _ in range(3):
        assert _login(client, "operator", "wrong").status_code == 200
    response = _login(client, "operator", "pw-operator")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


@override_settings(LOGIN_MAX_FAILURES=3)
def test_it_locks_out_a_username_guessed_from_many_addresses(client, operator):
    for i in range(3):
        _login(client, "operator", "wrong", ip=f"10.0.1.{i}")
    assert _login(client, "operator", "pw-operator", ip="10.0.2.99").status_code == 429


@override_settings(LOGIN_MAX_FAILURES=3)
def test_it_lets_a_correct_password_in_below_the_limit(client, operator):
    _login(client, "operator", "wrong")
    response = _login(client, "operator", "pw-operator")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(operator.pk)
