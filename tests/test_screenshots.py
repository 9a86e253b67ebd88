"""The browser tests' pictures go to a temporary folder unless `make screenshots` asks for the
docs' own: running the suite must leave `git status` clean."""

import os
import subprocess

from tests.browser import DOCS_SCREENSHOTS, screenshots_dir
from tests.support import REPO


def test_it_saves_screenshots_outside_the_repository_by_default():
    folder = os.path.realpath(screenshots_dir({}))
    assert not folder.startswith(str(REPO.resolve()) + os.sep)


def test_it_saves_screenshots_into_the_docs_when_asked():
    assert screenshots_dir({"SCREENSHOTS_DIR": DOCS_SCREENSHOTS}) == DOCS_SCREENSHOTS
    assert os.path.realpath(DOCS_SCREENSHOTS).startswith(str(REPO.resolve()))


def test_it_refreshes_the_docs_screenshots_with_make_screenshots():
    plan = subprocess.run(
        ["make", "-n", "screenshots"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert plan.returncode == 0, plan.stderr
    assert "SCREENSHOTS_DIR=docs/screenshots" in plan.stdout
    assert "tests/test_browser_" in plan.stdout
