"""figures: the report's PNG figures, checked on the data they plot, not on pixels. Inputs are the
synthetic per-stage files of test_report."""
from __future__ import annotations

import pytest

from squeeze import figures, report
from test_report import QUICK_GRID, write_inputs


@pytest.fixture
def quick_report(tmp_path) -> report.Report:
    return report.load(QUICK_GRID, write_inputs(tmp_path, QUICK_GRID))


def plotted(fig) -> dict[str, list[tuple[float, float]]]:
    """Every labelled line and scatter of a figure: label -> its (x, y) points."""
    points = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            points[line.get_label()] = [tuple(p) for p in line.get_xydata()]
        for collection in ax.collections:
            points[collection.get_label()] = [tuple(p) for p in collection.get_offsets()]
    return points


def by_axis(fig) -> list[dict[str, int]]:
    """Per axis: label -> number of points."""
    out = []
    for ax in fig.axes:
        found = {line.get_label(): len(line.get_xydata()) for line in ax.get_lines()}
        found.update({c.get_label(): len(c.get_offsets()) for c in ax.collections})
        out.append(found)
    return out


def counts(fig) -> dict[str, int]:
    return {label: len(p) for label, p in plotted(fig).items()}


def test_every_figure_is_listed():
    assert set(figures.FIGURES) == {"finetune_loss", "accuracy_vs_pruning", "tradeoff_structured",
                                    "tradeoff_unstructured", "tradeoff_final", "tradeoff_latency",
                                    "training_curves", "sensitivity"}


def test_sensitivity_figure_draws_each_group_from_its_unpruned_accuracy(quick_report):
    fig = figures.figure_sensitivity(quick_report)
    lines = {line.get_label(): line.get_xydata().tolist() for line in fig.axes[0].get_lines()}
    assert lines == {"conv1 (8) + tied": [[0.0, 0.81], [0.5, 0.41], [0.9, 0.11]],
                     "layer1.0.conv1 (8)": [[0.0, 0.81], [0.5, 0.8], [0.9, 0.6]]}


def test_figure_finetune_loss(quick_report):
    fig = figures.figure_finetune_loss(quick_report)
    assert plotted(fig) == {"structured 0.5": [(1, 2.0), (2, 1.0)]}


def test_figure_accuracy_vs_pruning(quick_report):
    fig = figures.figure_accuracy_vs_pruning(quick_report)
    assert counts(fig) == {"right after pruning": 2, "after fine-tune": 2,
                           "structured 0": 2, "structured 0.5": 2}
    assert plotted(fig)["after fine-tune"] == [(0.0, 0.93), (0.5, 0.905)]
    # unpruned (amount 0) the structured stage measures the baseline itself: its own accuracy
    assert plotted(fig)["right after pruning"] == [(0.0, 0.93), (0.5, 0.4)]


def test_figure_tradeoff_structured(quick_report):
    fig = figures.figure_tradeoff_structured(quick_report)
    assert plotted(fig) == {"fp32, structured pruning only": [(3.98778, 0.93), (1.99389, 0.905)]}
    assert fig.axes[0].get_xscale() == "log"


def test_figure_tradeoff_unstructured(quick_report):
    fig = figures.figure_tradeoff_unstructured(quick_report)
    assert counts(fig) == {"base structured 0": 2, "base structured 0.5": 2}


def test_figure_tradeoff_final_keeps_the_study_on_its_own_score(quick_report):
    """The study's published points appear only on the panel whose axis is the study's nominal
    score; this run's measured score has its own panel with its Pareto front."""
    fig = figures.figure_tradeoff_final(quick_report)
    measured, nominal = by_axis(fig)
    assert measured == {"fp32": 4, "fp16": 4, "int8": 4, "Pareto front": 4}
    assert nominal == {"fp32": 4, "fp16": 4, "int8": 4, "study (published)": 2}
    assert "measured" in fig.axes[0].get_xlabel() and "nominal" in fig.axes[1].get_xlabel()
    study = [tuple(p) for p in fig.axes[1].collections[-1].get_offsets()]
    assert study == [(3.98778, 0.935), (0.7475, 0.9287)]
    seed = sorted(tuple(p) for c in fig.axes[1].collections[:-1] for p in c.get_offsets())
    assert seed == sorted((r["score_seed"], r["accuracy"]) for r in quick_report.rows)
    front_scores = [x for x, _ in fig.axes[0].get_lines()[0].get_xydata()]
    assert front_scores == sorted(front_scores)


def test_figure_tradeoff_latency_is_per_image(quick_report):
    fig = figures.figure_tradeoff_latency(quick_report)
    assert counts(fig) == {"fp32": 4, "fp16": 4, "int8": 4}
    assert "ms per image at batch 32" in fig.axes[0].get_xlabel()
    xs = sorted(x for c in fig.axes[0].collections for x, _ in c.get_offsets())
    assert xs == sorted(r["latency_ms_b32"] for r in quick_report.rows)


def test_figure_training_curves(quick_report):
    assert counts(figures.figure_training_curves(quick_report)) == {
        "baseline": 3, "s0.5": 2, "s0-u0.5": 2, "s0.5-u0.5": 2}


def test_a_full_grid_of_runs_is_told_apart():
    """31 runs of a 5 x 5 grid: no two share colour, line style and marker."""
    amounts = [0, 0.1, 0.3, 0.5, 0.7]
    runs = [{"stage": "baseline", "structured": None, "unstructured": None}]
    runs += [{"stage": "structured", "structured": s, "unstructured": None} for s in amounts]
    runs += [{"stage": "unstructured", "structured": s, "unstructured": u}
             for s in amounts for u in amounts]
    styles = [figures.run_style(r, amounts, amounts) for r in runs]
    keys = {(tuple(st["color"]) if not isinstance(st["color"], str) else st["color"],
             st["linestyle"], st["marker"], st["linewidth"]) for st in styles}
    assert len(keys) == len(runs) == 31


def test_figures_of_a_grid_without_fine_tunes_are_still_drawn(tmp_path):
    grid = report.Grid((0,), (0,), ("fp32",))
    single = report.load(grid, write_inputs(tmp_path, grid))
    assert plotted(figures.figure_finetune_loss(single)) == {}
    assert by_axis(figures.figure_tradeoff_final(single))[0]["Pareto front"] == 1
    for draw in figures.FIGURES.values():
        assert draw(single).axes
