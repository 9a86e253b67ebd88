"""deploy/: the systemd units, the `deploy/manage` wrapper and the thin `deploy/walletnotify`."""

import configparser
import subprocess

from tests.support import REPO

DEPLOY = REPO / "deploy"


def unit(name):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(DEPLOY / name)
    return parser


def test_it_stops_only_the_top_process_of_each_unit_first():
    for name in (
        "cryptoadmin-web.service",
        "cryptoadmin-scheduler.service",
        "cryptoadmin-events.service",
        "cryptoadmin-listener.service",
    ):
        service = unit(name)["Service"]
        assert service["KillMode"] == "mixed", name
        assert service["EnvironmentFile"] == "/etc/cryptoadmin/env"
    assert (
        "gunicorn cryptoadmin.wsgi:application"
        in unit("cryptoadmin-web.service")["Service"]["ExecStart"]
    )
    assert unit("cryptoadmin-scheduler.service")["Service"]["ExecStart"].endswith(
        "manage.py qcluster"
    )
    assert unit("cryptoadmin-events.service")["Service"]["ExecStart"].endswith(
        "manage.py deliver_events"
    )
    # Push is the default: the listener runs under the process manager, restarted if it exits.
    listener = unit("cryptoadmin-listener.service")["Service"]
    assert listener["ExecStart"].endswith("manage.py listen_node")
    assert listener["Restart"] == "always"
    # A running task (Q_TIMEOUT, 300 s by default) is never cut short by a normal stop.
    assert int(unit("cryptoadmin-scheduler.service")["Service"]["TimeoutStopSec"]) > 300


def test_it_runs_manage_py_with_the_environment_file(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text(
        f"DEBUG=1\nDATABASE_URL=sqlite:///{tmp_path / 'db.sqlite3'}\n"
        'ALERT_URLS="json://127.0.0.1:9/a json://127.0.0.1:9/b"\nLOG_LEVEL=LOUD\n'
    )
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "CRYPTOADMIN_ENV": str(env_file)}

    def check():
        return subprocess.run(
            [str(DEPLOY / "manage"), "check"],
            cwd="/",
            env=base,
            capture_output=True,
            text=True,
            timeout=120,
        )

    result = check()
    assert result.returncode != 0
    assert "configuration error: LOG_LEVEL='LOUD'" in result.stderr  # the file's values were read

    env_file.write_text(env_file.read_text().replace("LOG_LEVEL=LOUD", "LOG_LEVEL=info"))
    result = check()
    assert result.returncode == 0, result.stderr


def test_it_hands_a_txid_over_through_deploy_walletnotify_with_the_environment_file(tmp_path):
    import socket

    path = str(tmp_path / "n.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(10)
    env_file = tmp_path / "env"
    env_file.write_text(f"WALLETNOTIFY_SOCKET={path}\n")
    env = {"PATH": "/usr/bin:/bin", "CRYPTOADMIN_ENV": str(env_file)}
    result = subprocess.run(
        [str(DEPLOY / "walletnotify"), "BTC", "cd" * 32],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert receiver.recv(512) == b"BTC " + b"cd" * 32
