"""The fault-injection points that money-path tests arm to crash or park a process."""

import os
import subprocess

import pytest

from cryptoadmin import faults
from tests.support import PYTHON, REPO


def test_it_does_nothing_unless_armed():
    faults.point("test.nowhere")
    assert faults.reached["test.nowhere"] >= 1


def test_it_raises_where_armed_in_process():
    with faults.armed({"test.here": "raise"}):
        with pytest.raises(faults.InjectedFault, match="test.here"):
            faults.point("test.here")
    faults.point("test.here")  # disarmed again


def test_it_acts_on_the_nth_time_only():
    with faults.armed({"test.loop": "3*raise"}):
        faults.point("test.loop")
        faults.point("test.loop")
        with pytest.raises(faults.InjectedFault):
            faults.point("test.loop")


def test_it_is_inert_without_the_test_settings(settings):
    settings.TEST_HOOKS = False
    with faults.armed({"test.off": "raise"}):
        faults.point("test.off")


def test_it_kills_a_child_process_with_sigkill_from_the_environment():
    env = dict(
        os.environ,
        CRYPTOADMIN_FAULT="test.child=kill",
        DJANGO_SETTINGS_MODULE="devtools.settings_test",
        PYTHONPATH=str(REPO),
    )
    code = (
        "import django; django.setup(); from cryptoadmin import faults; "
        "faults.point('test.child'); print('alive')"
    )
    proc = subprocess.run(
        [PYTHON, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -9, proc.stderr
    assert "alive" not in proc.stdout
