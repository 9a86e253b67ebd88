"""Child process trees that stop cleanly: used by `manage.py serve` and `manage.py demo`.

Each child starts in a session of its own, so a terminal's Ctrl-C (SIGINT to the whole
foreground process group) reaches only the parent. The parent then sends one signal to each
child's leader (qcluster and gunicorn stop their own workers gracefully on SIGTERM), waits,
and finally SIGKILLs whatever is left in each child's process group: a worker whose parent
died, or a leader that did not stop in time. Before this, the demo's qcluster got SIGINT twice
(once from the terminal, once from the demo), and only its top process was killed after the
wait, leaving the sentinel, monitor, pusher and workers running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    wait_group_gone(pgid, 5)


def ignore_stop_signals() -> None:
    """From now on SIGINT and SIGTERM are ignored: a second Ctrl-C (or a service manager's
    SIGTERM) while the children are being stopped must not cut their stop short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class ProcessTree:
    def __init__(self):
        self.children: list[subprocess.Popen] = []

    def start(self, args: list[str], **kwargs) -> subprocess.Popen:
        child = subprocess.Popen(args, start_new_session=True, **kwargs)
        self.children.append(child)
        return child

    def all_running(self) -> bool:
        return all(child.poll() is None for child in self.children)

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
        """One signal to each leader, a bounded wait for their groups, then SIGKILL the rest."""
        for child in self.children:
            if child.poll() is None:
                try:
                    child.send_signal(sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # The leader's session id is its pid: a straggler keeps that group alive.
            if not wait_group_gone(child.pid, max(0.0, deadline - time.monotonic())):
                kill_group(child.pid)
            if child.poll() is None:
                child.kill()
            child.wait()
