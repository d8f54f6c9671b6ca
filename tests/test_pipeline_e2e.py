"""End to end: the quick profile through the real DVC pipeline, in a throwaway copy of the repo.

Uses the real CIFAR-10 JPEG archive when it is at ../shared/data/cifar10-jpeg.tar.gz (or at
$SQUEEZE_CIFAR_ARCHIVE), synthetic data otherwise. Checks that accuracy is well above chance,
that every model of the grid was measured, and that a second `dvc repro` runs nothing.
Takes a few minutes; deselect with `-m "not e2e"`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from squeeze.bench import copy_sources

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = Path(os.environ.get("SQUEEZE_CIFAR_ARCHIVE",
                              REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"))

pytestmark = pytest.mark.e2e


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    repo = tmp_path_factory.mktemp("squeeze-e2e")
    copy_sources(REPO, repo)  # the working tree's files, no outputs, no dvc.lock
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SQUEEZE_DEVICE": "cpu"}
    env.pop("PYTHONPATH", None)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.name", "squeeze-e2e"],
                ["git", "config", "user.email", "e2e@squeeze.invalid"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "e2e"]):
        run(cmd, repo, env)
    profile = [sys.executable, "-m", "squeeze", "profile", "quick"]
    if ARCHIVE.is_file():
        profile += ["--data", str(ARCHIVE)]
    log = run(profile, repo, env)
    return repo, env, log


def grid(repo: Path):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    return (params["prune"]["structured"]["amounts"], params["prune"]["unstructured"]["amounts"],
            params["quantize"]["types"])


def test_every_model_of_the_grid_is_measured(quick_run):
    repo, _, _ = quick_run
    structured, unstructured, types = grid(repo)
    for s in structured:
        for u in unstructured:
            for q in types:
                metrics = json.loads((repo / f"metrics/models/s{s}-u{u}-{q}.json").read_text())
                assert metrics["quant"] == q and metrics["structured"] == s
                assert metrics["score"] > 0 and metrics["latency_ms_b32"] > 0


def test_accuracy_is_well_above_chance(quick_run):
    repo, _, _ = quick_run
    baseline = json.loads((repo / "metrics/models/s0-u0-fp32.json").read_text())
    chance = 0.1
    # real data, width 8, 4 epochs on 5,000 images reaches ~0.35-0.45; synthetic ~1.0
    assert baseline["accuracy"] >= (3 * chance if ARCHIVE.is_file() else 0.8), baseline
    int8 = json.loads((repo / "metrics/models/s0-u0-int8.json").read_text())
    assert abs(int8["accuracy"] - baseline["accuracy"]) < 0.05, (int8, baseline)


def test_pruning_lowers_the_score(quick_run):
    repo, _, _ = quick_run
    base = json.loads((repo / "metrics/models/s0-u0-fp32.json").read_text())
    pruned = json.loads((repo / "metrics/models/s0.5-u0.5-fp32.json").read_text())
    assert pruned["params"] < 0.3 * base["params"]
    assert pruned["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert pruned["score"] < 0.35 * base["score"]


def test_second_repro_runs_nothing(quick_run):
    repo, env, _ = quick_run
    log = run(["dvc", "repro"], repo, env)
    assert "Running stage" not in log, log[-3000:]
    status = run(["dvc", "status"], repo, env)
    assert "up to date" in status, status
