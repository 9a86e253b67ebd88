"""`manage.py demo` stops cleanly every time: Ctrl-C, as a terminal sends it (SIGINT to the
whole foreground process group), leaves no process of the tree it built running."""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from devtools.localservices import free_port
from tests.support import PYTHON, REPO, wait_until

pytestmark = pytest.mark.node

MARKER = "CRYPTOADMIN_DEMO_TEST_MARKER"
# demo, its two nodes, runserver, the event dispatcher, the node listener, and qcluster: the
# command, its sentinel, monitor, pusher and workers.
Q_WORKERS = 1  # the smallest cluster that still has every kind of process
TREE_SIZE = 1 + 2 + 1 + 1 + (4 + Q_WORKERS)


def marked_processes(marker: str) -> list[tuple[int, str]]:
    """Live processes whose environment carries this run's marker: every descendant of the demo."""
    found = []
    needle = f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X"):
            found.append((int(entry.name), cmdline[:120]))
    return found


def test_it_leaves_no_process_behind_after_ctrl_c_ten_times_in_a_row(tmp_path):
    marker = uuid.uuid4().hex
    env = dict(os.environ)
    env.update(
        {
            MARKER: marker,
            "DJANGO_SETTINGS_MODULE": "cryptoadmin.settings",
            "DEBUG": "1",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
            "Q_WORKERS": str(Q_WORKERS),
            "PYTHONPATH": str(REPO),
            "CRYPTOADMIN_FAULT": "",
        }
    )
    try:
        for run in range(10):
            log = tmp_path / f"demo-{run}.log"
            with log.open("w") as out:
                # A session of its own stands for the terminal's foreground process group.
                demo = subprocess.Popen(
                    [
                        PYTHON,
                        "manage.py",
                        "demo",
                        "--var",
                        str(tmp_path / "var"),
                        "--port",
                        str(free_port()),
                    ],
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            t0 = time.monotonic()
            try:
                wait_until(
                    lambda log=log, demo=demo: (
                        "Dashboard:" in log.read_text() or demo.poll() is not None
                    ),
                    180,
                    what="the demo to serve",
                )
                t1 = time.monotonic()
                assert demo.poll() is None, log.read_text()[-3000:]
                wait_until(
                    lambda: len(marked_processes(marker)) >= TREE_SIZE,
                    30,
                    what="the whole process tree",
                )
                wait_until(
                    lambda log=log: "running." in log.read_text(),
                    60,
                    what="the scheduler cluster to run",
                )
                t2 = time.monotonic()
                os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C
                demo.wait(timeout=60)
                print(
                    f"run {run}: set-up {t1 - t0:.1f} s, scheduler up {t2 - t1:.1f} s, "
                    f"stop {time.monotonic() - t2:.1f} s"
                )
            finally:
                if demo.poll() is None:
                    demo.kill()
                    demo.wait()
            stopped = "stopped: web server, scheduler, event dispatcher, nodes"
            assert stopped in log.read_text(), log.read_text()[-3000:]
            assert (run, marked_processes(marker)) == (run, [])
    finally:
        for pid, _ in marked_processes(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
