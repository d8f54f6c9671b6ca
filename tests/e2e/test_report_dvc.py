"""The report across processes: its import closure in a fresh interpreter, the `dvc plots`
definitions read by DVC itself from a scratch git+DVC repository, and the profile's git check."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from report_inputs import ROOT, dvc_yaml, output_paths, quick_inputs, quick_report  # noqa: F401 (fixtures)
from squeeze.report import tradeoff


def test_report_imports_no_torch_training_pruning_or_quantization():
    code = ("import sys, squeeze.report.tradeoff; print(sorted(m for m in ('torch', 'squeeze.train', "
            "'squeeze.prune', 'squeeze.quantize', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert done.stdout.strip() == "[]"  # matplotlib too: it loads when a figure is drawn


def dvc_command() -> str:
    found = shutil.which("dvc") or shutil.which("dvc", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("dvc is not installed")
    return found


def fake_repo(root: Path) -> Path:
    """A git+DVC repository holding only the project's plots and metrics definitions."""
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=git_env())
    subprocess.run([dvc_command(), "init", "-q"], cwd=root, check=True, env=git_env())
    shutil.copytree(ROOT / ".dvc" / "plots", root / ".dvc" / "plots")
    pipeline = dvc_yaml()
    (root / "dvc.yaml").write_text(yaml.safe_dump(
        {"metrics": pipeline["metrics"], "plots": pipeline["plots"]}, sort_keys=False))
    return root


def git_env() -> dict:
    return {**os.environ, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def git_commit(root: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=git_env())
    subprocess.run(["git", "commit", "-qm", message], cwd=root, check=True, env=git_env())


def dvc_plots_json(root: Path, *args: str) -> dict:
    done = subprocess.run([dvc_command(), "plots", *args, "--json"], cwd=root, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)["data"]


def write_plot_data(result: tradeoff.Report, directory: Path) -> None:
    """The two CSV files that dvc.yaml's plots read (the figures are not needed here)."""
    paths = output_paths(directory)
    paths["csv_path"].parent.mkdir(parents=True, exist_ok=True)
    paths["csv_path"].write_text(tradeoff.csv_text(result.rows, tradeoff.CSV_COLUMNS))
    paths["curves_path"].write_text(tradeoff.csv_text(result.curves, tradeoff.CURVE_COLUMNS))


def tradeoff_values(plots: dict, name: str = "tradeoff_by_quant") -> list[dict]:
    (plot,) = plots[name]
    return plot["content"]["data"]["values"]


def test_dvc_plots_show_yields_the_tradeoff_data(quick_report, tmp_path):
    repo = fake_repo(tmp_path / "repo")
    write_plot_data(quick_report, repo / "reports")
    plots = dvc_plots_json(repo, "show")
    assert set(plots) == {"tradeoff_by_quant", "tradeoff_by_structured", "accuracy_vs_pruning",
                          "training_loss", "training_accuracy"}
    values = tradeoff_values(plots)
    expected = {(r["model"], r["score"], r["accuracy"]) for r in quick_report.rows}
    assert {(v["model"], float(v["score"]), float(v["accuracy"])) for v in values} == expected
    assert {v["quant"] for v in values} == {"fp32", "fp16", "int8"}  # the template's colour
    (curves,) = plots["training_loss"]
    assert len(curves["content"]["data"]["values"]) == len(quick_report.curves)


def test_dvc_plots_diff_overlays_both_revisions_fronts(quick_report, tmp_path):
    repo = fake_repo(tmp_path / "repo")
    write_plot_data(quick_report, repo / "reports")
    git_commit(repo, "first grid")
    smaller = tradeoff.Report(rows=tradeoff.with_pareto(quick_report.rows[:6]),
                            curves=quick_report.curves)
    write_plot_data(smaller, repo / "reports")
    values = tradeoff_values(dvc_plots_json(repo, "diff", "HEAD"))
    fronts = {}
    for v in values:
        if v["pareto"] == "true":
            fronts.setdefault(v["rev"], set()).add(v["model"])
    assert fronts == {"HEAD": set(quick_report.summary()["pareto"]),
                      "workspace": set(smaller.summary()["pareto"])}


def test_profile_warns_when_the_workspace_params_differ_from_head(tmp_path, monkeypatch):
    from squeeze.__main__ import workspace_params_warning

    env = git_env()
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=env)
    (tmp_path / "params.yaml").write_text("a: 1\n")
    git_commit(tmp_path, "params")
    monkeypatch.chdir(tmp_path)
    assert workspace_params_warning() is None
    (tmp_path / "params.yaml").write_text("a: 2\n")  # what an earlier `dvc exp run` leaves
    warning = workspace_params_warning()
    assert warning.startswith("warning: params.yaml differs from HEAD")
    assert "git checkout HEAD -- params.yaml" in warning
