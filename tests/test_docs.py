"""The documentation's shape: README.md is a front door, topics live in docs/, no heading is
named after an issue, and CONTRIBUTING.md sends nobody outside the repository."""

import re

from tests.support import REPO

PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]


def test_it_keeps_the_readme_a_front_door():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for topic in ("architecture", "confirmations", "broadcasts", "balances", "operations"):
        assert f"(docs/{topic}.md)" in readme


def test_it_names_no_heading_after_an_issue():
    for page in PAGES:
        headings = [line for line in page.read_text().splitlines() if line.startswith("#")]
        assert not [h for h in headings if re.search(r"\bissues? #?\d+", h, re.I)], page.name


def test_it_links_only_to_files_in_the_repository_from_contributing():
    text = (REPO / "CONTRIBUTING.md").read_text()
    assert "../" not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        assert (REPO / target).exists(), target


def test_it_links_to_topic_pages_that_exist_from_the_docs():
    for page in sorted((REPO / "docs").glob("*.md")):
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)
