"""Shared test settings."""
from __future__ import annotations

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
