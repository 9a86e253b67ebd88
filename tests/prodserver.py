"""Helpers for tests that run the production server (`manage.py serve`) in child processes
and talk to it over loopback HTTP, as the reverse proxy in front of it would."""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import time
from html import unescape

import requests

from devtools.localservices import free_port
from tests.support import PYTHON, REPO


def production_env(child_env, tmp_path, **extra) -> dict:
    """DEBUG off, a real SECRET_KEY, behind a TLS proxy, on the test database."""
    env = dict(child_env)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "cryptoadmin.settings",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "BEHIND_TLS_PROXY": "1",
            "STATIC_ROOT": str(tmp_path / "static"),
            "CRYPTOADMIN_FAULT": "",
            "Q_WORKERS": "1",
            # The suite's regtest node listens on loopback.
            "NODE_HOSTS": "127.0.0.1",
        }
    )
    env.update(extra)
    return env


def start_serve(env, log_path, *args, manage=(PYTHON, "manage.py")) -> tuple[subprocess.Popen, str]:
    """`manage`: how manage.py is run (deploy/manage: with the environment file it names)."""
    port = free_port()
    out = open(log_path, "w")
    proc = subprocess.Popen(
        [*manage, "serve", "--bind", f"127.0.0.1:{port}", *args],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"serve exited {proc.returncode}: {open(log_path).read()[-3000:]}"
                )
            try:
                # Not following the redirect to https: nothing speaks TLS here but the proxy.
                requests.get(base + "/admin/login/", timeout=10, allow_redirects=False)
                return proc, base
            except requests.RequestException as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"serve did not answer: {open(log_path).read()[-3000:]}"
                    ) from exc
                time.sleep(0.2)
    except BaseException:
        stop(proc)
        raise


class ProxiedBrowser:
    """Speaks to the server as a TLS-terminating proxy forwards a browser's requests:
    X-Forwarded-Proto: https, and cookies (Secure ones too) kept by hand."""

    def __init__(self, base: str):
        self.base = base
        self.cookies: dict[str, str] = {}

    def _headers(self, path, extra):
        headers = {
            "X-Forwarded-Proto": "https",
            "Referer": f"https://{self.base.split('://', 1)[1]}{path}",
        }
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers.update(extra or {})
        return headers

    def _keep(self, response):
        for cookie in response.cookies:
            self.cookies[cookie.name] = cookie.value
        return response

    def get(self, path, headers=None):
        return self._keep(
            requests.get(
                self.base + path,
                headers=self._headers(path, headers),
                allow_redirects=False,
                timeout=30,
            )
        )

    def post(self, path, data, headers=None):
        return self._keep(
            requests.post(
                self.base + path,
                data=data,
                headers=self._headers(path, headers),
                allow_redirects=False,
                timeout=30,
            )
        )

    def csrf_token(self, html: str) -> str:
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    def log_in(self, username: str, password: str, code=None) -> None:
        """Through the real admin login form: the password, and `code()` (the current code of
        the user's authenticator, see conftest's totp_device) in the second-factor field."""
        form = self.get("/admin/login/?next=/admin/")
        assert form.status_code == 200, form.status_code
        response = self.post(
            "/admin/login/?next=/admin/",
            {
                "username": username,
                "password": password,
                "otp_token": code() if code else "",
                "next": "/admin/",
                "csrfmiddlewaretoken": self.csrf_token(form.text),
            },
        )
        assert response.status_code == 302 and response.headers["Location"] == "/admin/", (
            response.status_code,
            unescape(response.text)[:2000],
        )


def stop(proc, timeout=40):
    """SIGTERM to the leader only (serve and qcluster stop their own children gracefully; a
    signal to the whole group would kill qcluster's workers under its feet), then SIGKILL
    whatever is left in its group."""
    from ops.processes import kill_group, wait_group_gone

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    finally:
        if not wait_group_gone(proc.pid, 5):
            kill_group(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
