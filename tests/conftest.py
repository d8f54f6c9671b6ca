"""Shared test settings: one torch thread; the `e2e` marker on tests/e2e; no process from tests/unit."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread():
    """Run torch on one CPU thread. The test machines are small and often shared with a running
    pipeline; two OpenMP threads competing with another process for two cores make training many
    times slower, while one thread stays fast and gives the same float reductions in every run."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


E2E = Path(__file__).resolve().parent / "e2e"
UNIT = Path(__file__).resolve().parent / "unit"


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the markers
def pytest_collection_modifyitems(items):
    """Every test under tests/e2e starts a process (a stage, dvc, git, `python -m squeeze`) and
    carries the `e2e` marker, so `pytest -m "not e2e"` runs the in-process tests alone."""
    for item in items:
        if E2E in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


class StartsAProcess(AssertionError):
    pass


@pytest.fixture(scope="session", autouse=True)
def matplotlib_font_cache():
    """matplotlib builds its font cache on first use by asking `fc-list`: build it before any unit
    test runs, so a unit test that draws a figure passes on a fresh machine whatever ran first."""
    from matplotlib import font_manager

    font_manager.findfont("DejaVu Sans")


@pytest.fixture(autouse=True)
def unit_tests_start_no_process(request, monkeypatch):
    """A unit test that starts a process fails, naming the command: it belongs in tests/e2e."""
    if UNIT not in Path(request.node.path).parents:
        return

    start = subprocess.Popen.__init__

    def refuse(self, args, *rest, **kwargs):
        if list(args) == ["uname", "-p"]:  # the standard library's platform.platform() asks it
            return start(self, args, *rest, **kwargs)
        raise StartsAProcess(f"a unit test started a process {args!r}: move it to tests/e2e")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
