"""Fault injection at the boundaries of money paths, for the test suite and the soak.

Every place where a process can die between two database commits, or between a commit and
a node call, names itself with `faults.point("area.step")`. In production this is a
no-op (one attribute read): points act only when `settings.TEST_HOOKS` is on.

A test arms points in two ways:

- in a child process, through the environment:
  `CRYPTOADMIN_FAULT="broadcast.after_open=kill;credit.before_commit=raise"`;
- in this process: `with faults.armed({"credit.before_commit": "raise"}): ...`.

Actions:
- `kill`: SIGKILL this process on the spot (what a crash, an OOM kill or a power cut does);
- `raise`: raise `InjectedFault` (a database error or a bug at that point);
- `pause:<seconds>`: print `paused <name>` to stdout, flushed, then sleep, so a parent can
  SIGKILL the process or act while it is parked there;
- `wait:<path>`: print `paused <name>`, then wait (at most two minutes) until the file
  `path` exists: the parent decides when it goes on, whatever the machine's load;
- any action may be prefixed `N*` to act only on the N-th time the point is reached
  (`2*kill`: the second deposit in a loop).

Reached points are counted in `reached` (this process only), so a test can assert that a
point it arms really is on the path it drives.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager

from django.conf import settings

ENV = "CRYPTOADMIN_FAULT"
reached: Counter = Counter()
_local: dict[str, str] = {}
_lock = threading.Lock()


class InjectedFault(RuntimeError):
    """Raised at an armed point: stands for any error a real run could hit there."""


def _from_env() -> dict[str, str]:
    spec = os.environ.get(ENV, "")
    out = {}
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        name, _, action = item.partition("=")
        out[name.strip()] = action.strip()
    return out


def point(name: str) -> None:
    """A named boundary. Does nothing unless the test settings are on and the point is armed."""
    if not getattr(settings, "TEST_HOOKS", False):
        return
    with _lock:
        reached[name] += 1
        count = reached[name]
    action = _local.get(name) or _from_env().get(name)
    if not action:
        return
    if "*" in action:
        nth, _, action = action.partition("*")
        if count != int(nth):
            return
    if action == "kill":
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise InjectedFault(f"fault injected at {name}")
    elif action.startswith("pause:"):
        print(f"paused {name}", flush=True)
        time.sleep(float(action.split(":", 1)[1]))
    elif action.startswith("wait:"):
        print(f"paused {name}", flush=True)
        until = time.monotonic() + 120
        while not os.path.exists(action.split(":", 1)[1]) and time.monotonic() < until:
            time.sleep(0.02)
    else:
        raise ValueError(f"unknown fault action {action!r} at {name}")


@contextmanager
def armed(points: dict[str, str]):
    """Arm points in this process for the duration of the block; counters start at zero."""
    with _lock:
        _local.update(points)
        for name in points:
            reached.pop(name, None)
    try:
        yield reached
    finally:
        with _lock:
            for name in points:
                _local.pop(name, None)
