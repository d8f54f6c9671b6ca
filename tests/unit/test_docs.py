"""The README and docs/: the front door's size, links that resolve, no history, and every
documented command classified (tests/support/docs_commands.py) so that the e2e test runs it or a named
test covers it."""
from __future__ import annotations

import re

import pytest

from docs_commands import COVERAGE, PAGES, ROOT, coverage, documented, runnable


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    text = "\n".join(lines)
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in text, f"README does not link docs/{page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        if "runs/cpu/" in target and not (page.parent / target).exists():
            continue  # the archive of the cpu run lands with its own commit
        assert (page.parent / target).exists(), f"{page.name}: link to {target} does not resolve"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_history_of_how_the_work_went(page):
    text = page.read_text()
    for phrase in (r"\bIssue \d+", r"\bsession \d+", r"this session", r"\bso far\b"):
        assert not re.search(phrase, text, flags=re.I), f"{page.name}: {phrase}"


def test_every_documented_command_is_classified():
    commands = documented()
    assert len(commands) > 40  # the extraction found the blocks
    unclassified = []
    for page, command in commands:
        try:
            coverage(command)
        except LookupError:
            unclassified.append(f"{page}: {command}")
    assert not unclassified, "\n".join(unclassified)


def test_every_coverage_entry_is_used():
    """A pattern no documented command matches is stale: the docs dropped the command."""
    commands = [c for _, c in documented()]
    unused = [p for p, _ in COVERAGE if not any(re.fullmatch(p, c) for c in commands)]
    assert not unused, unused


def test_the_runnable_commands_include_the_first_ones_a_reader_meets():
    commands = [c for c, _ in runnable()]
    assert "python -m squeeze compare" in commands and "dvc plots show" in commands
    assert any(c.startswith("python -m squeeze recommend") and c.endswith("| head -3")
               for c in commands)
