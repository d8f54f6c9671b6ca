"""figures: the report's PNG figures, checked on the data they plot, not on pixels. Inputs are the
synthetic per-stage files of test_report."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from squeeze.report import figures, tradeoff
from squeeze.config import Grid
from report_inputs import QUICK_GRID, write_inputs

N = 1000  # test images of the reports whose figures draw 95% intervals


@pytest.fixture
def quick_report(tmp_path) -> tradeoff.Report:
    return tradeoff.load(QUICK_GRID, write_inputs(tmp_path, QUICK_GRID))


@pytest.fixture
def measured_report(tmp_path) -> tradeoff.Report:
    """The quick grid as the report stage loads it: with the test set's size, so every accuracy
    has its 95% interval."""
    return tradeoff.load(QUICK_GRID, write_inputs(tmp_path / "measured", QUICK_GRID),
                       test_images=N)


def labelled(artists) -> list:
    """Artists with a legend label: matplotlib labels its helpers (error bars, bands) "_..."."""
    return [a for a in artists if not a.get_label().startswith("_")]


def plotted(fig) -> dict[str, list[tuple[float, float]]]:
    """Every labelled line and scatter of a figure: label -> its (x, y) points."""
    points = {}
    for ax in fig.axes:
        for line in labelled(ax.get_lines()):
            points[line.get_label()] = [tuple(p) for p in line.get_xydata()]
        for collection in labelled(ax.collections):
            points[collection.get_label()] = [tuple(p) for p in collection.get_offsets()]
    return points


def by_axis(fig) -> list[dict[str, int]]:
    """Per axis: label -> number of points."""
    out = []
    for ax in fig.axes:
        found = {line.get_label(): len(line.get_xydata()) for line in labelled(ax.get_lines())}
        found.update({c.get_label(): len(c.get_offsets()) for c in labelled(ax.collections)})
        out.append(found)
    return out


def counts(fig) -> dict[str, int]:
    return {label: len(p) for label, p in plotted(fig).items()}


def intervals(ax) -> list[tuple[float, float, float]]:
    """Every 95% interval an axis draws, as (x, low, high): error bars (one segment each) and
    bands (their outline's extent at each x), sorted."""
    found = []
    for artist in ax.collections:
        if artist.get_gid() != figures.INTERVAL:
            continue
        if hasattr(artist, "get_segments"):  # error bars: a vertical segment per point
            found += [(seg[0][0], min(seg[:, 1]), max(seg[:, 1]))
                      for seg in map(np.asarray, artist.get_segments())]
        else:  # a band: its polygon's lowest and highest y at each x
            vertices = artist.get_paths()[0].vertices
            for x in sorted(set(vertices[:, 0])):
                ys = vertices[vertices[:, 0] == x, 1]
                found.append((x, min(ys), max(ys)))
    return sorted((float(x), round(float(lo), 6), round(float(hi), 6)) for x, lo, hi in found)


def note(fig) -> str:
    """The small print under a figure (figures.note)."""
    return " ".join(text.get_text() for text in fig.texts).replace("\n", " ")


def wilson(accuracy: float, n: int = N) -> tuple[float, float]:
    return tradeoff.accuracy_interval(accuracy, n)


def test_every_figure_is_listed():
    assert set(figures.FIGURES) == {"finetune_loss", "accuracy_vs_pruning", "tradeoff_structured",
                                    "tradeoff_unstructured", "tradeoff_final", "tradeoff_latency",
                                    "training_curves", "sensitivity"}


def test_sensitivity_figure_draws_each_group_from_its_unpruned_accuracy(quick_report):
    fig = figures.figure_sensitivity(quick_report)
    lines = {line.get_label(): line.get_xydata().tolist() for line in fig.axes[0].get_lines()}
    assert lines == {"conv1 (8) + tied": [[0.0, 0.81], [0.5, 0.41], [0.9, 0.11]],
                     "layer1.0.conv1 (8)": [[0.0, 0.81], [0.5, 0.8], [0.9, 0.6]]}
    assert "no 95% intervals drawn" in note(fig)  # sensitivity.csv has no image count


def test_figure_finetune_loss(quick_report):
    fig = figures.figure_finetune_loss(quick_report)
    lines = plotted(fig)
    assert lines.pop("structured 0.5") == [(1, 2.0), (2, 1.0)]
    # the baseline's last epoch (3 epochs, loss 2/3) as the level to compare the fine-tune with
    (reference,) = lines.values()
    assert {y for _, y in reference} == {0.6667}
    assert list(fig.axes[0].get_xticks()) == [1, 2]  # whole epochs only


def test_finetune_loss_of_one_epoch_fine_tunes_has_one_whole_tick(quick_report):
    """The quick profile fine-tunes for 1 epoch: one point per run, tick "1", no fractions."""
    curves = [r for r in quick_report.curves if r["epoch"] == 1 or r["stage"] == "baseline"]
    fig = figures.figure_finetune_loss(dataclasses.replace(quick_report, curves=curves))
    assert plotted(fig)["structured 0.5"] == [(1, 2.0)]
    assert list(fig.axes[0].get_xticks()) == [1]
    assert fig.axes[0].get_xlim() == (0.5, 1.5)
    assert "1 epoch" in note(fig)


def test_figure_accuracy_vs_pruning(quick_report):
    fig = figures.figure_accuracy_vs_pruning(quick_report)
    assert counts(fig) == {"right after pruning": 2, "after fine-tune": 2,
                           "structured 0": 2, "structured 0.5": 2}
    assert plotted(fig)["after fine-tune"] == [(0.0, 0.93), (0.5, 0.905)]
    # unpruned (amount 0) the structured stage measures the baseline itself: its own accuracy
    assert plotted(fig)["right after pruning"] == [(0.0, 0.93), (0.5, 0.4)]
    # no test-set size, no intervals: the figure says so instead of drawing none silently
    assert all(intervals(ax) == [] for ax in fig.axes)
    assert "no 95% intervals" in note(fig)


def test_accuracy_vs_pruning_draws_a_band_along_every_line(measured_report):
    fig = figures.figure_accuracy_vs_pruning(measured_report)
    left, right = fig.axes
    # one band per line, its edges the Wilson interval of each accuracy on N images
    assert intervals(left) == sorted([(0.0, *wilson(0.93)), (0.5, *wilson(0.4)),
                                      (0.0, *wilson(0.93)), (0.5, *wilson(0.905))])
    assert intervals(right) == sorted([(0.0, *wilson(0.93)), (0.5, *wilson(0.92)),
                                       (0.0, *wilson(0.905)), (0.5, *wilson(0.895))])
    assert f"{N:,} test images" in note(fig)


def test_accuracy_axis_does_not_zoom_a_difference_inside_the_noise(measured_report):
    """A +1 point bump inside a +-0.8 point interval: the axis holds both intervals and spans
    at least 10 points, so the bump is not drawn as a cliff."""
    rows = [{**r, "accuracy_float": 0.80 if r["unstructured"] == 0 else 0.81}
            for r in measured_report.rows if r["structured"] == 0]
    fig = figures.figure_accuracy_vs_pruning(
        dataclasses.replace(measured_report, rows=rows, test_images=10_000))
    low, high = fig.axes[1].get_ylim()
    assert high - low >= figures.MIN_ACCURACY_SPAN
    assert low <= wilson(0.80, 10_000)[0] and high >= wilson(0.81, 10_000)[1]


def test_figure_tradeoff_structured(quick_report, measured_report):
    fig = figures.figure_tradeoff_structured(quick_report)
    assert plotted(fig) == {"fp32, structured pruning only": [(3.98778, 0.93), (1.99389, 0.905)]}
    assert fig.axes[0].get_xscale() == "log"
    bars = intervals(figures.figure_tradeoff_structured(measured_report).axes[0])
    assert bars == [(1.99389, *wilson(0.905)), (3.98778, *wilson(0.93))]


def test_figure_tradeoff_unstructured(quick_report, measured_report):
    fig = figures.figure_tradeoff_unstructured(quick_report)
    assert counts(fig) == {"base structured 0": 2, "base structured 0.5": 2}
    fig = figures.figure_tradeoff_unstructured(measured_report)
    assert len(intervals(fig.axes[0])) == 4  # one error bar per point


def test_figure_tradeoff_final_keeps_the_study_on_its_own_score(quick_report):
    """The study's published points appear only on the panel whose axis is the study's nominal
    score; this run's measured score has its own panel with its Pareto front."""
    fig = figures.figure_tradeoff_final(quick_report)
    measured, nominal = by_axis(fig)
    assert measured == {"fp32": 4, "fp16": 4, "int8": 4, "Pareto front": 4}
    assert nominal == {"fp32": 4, "fp16": 4, "int8": 4, "study (published)": 2}
    assert "measured" in fig.axes[0].get_xlabel() and "nominal" in fig.axes[1].get_xlabel()
    study = plotted(fig)["study (published)"]
    assert study == [(3.98778, 0.935), (0.7475, 0.9287)]
    seed = sorted(p for c in labelled(fig.axes[1].collections)
                  if c.get_label() != figures.STUDY_LABEL for p in map(tuple, c.get_offsets()))
    assert seed == sorted((r["score_seed"], r["accuracy"]) for r in quick_report.rows)
    front_scores = [x for x, _ in labelled(fig.axes[0].get_lines())[0].get_xydata()]
    assert front_scores == sorted(front_scores)


def test_another_network_is_named_and_kept_off_the_studys_nominal_score(quick_report):
    """model.arch other than the study's: score_seed scales ResNet-18's counts, so neither this
    run's models nor the study's points are drawn on it; the measured panel names the network."""
    report = dataclasses.replace(quick_report, network="torchvision:mobilenet_v2")
    fig = figures.figure_tradeoff_final(report)
    measured, nominal = by_axis(fig)
    assert measured == {"fp32": 4, "fp16": 4, "int8": 4, "Pareto front": 4} and nominal == {}
    assert fig.axes[0].get_title().startswith("torchvision:mobilenet_v2")
    assert not fig.axes[1].axison
    assert "does not describe" in " ".join(t.get_text() for t in fig.axes[1].texts)


def test_tradeoff_final_draws_every_models_interval_and_the_studys(measured_report):
    fig = figures.figure_tradeoff_final(measured_report)
    measured, nominal = (intervals(ax) for ax in fig.axes)
    rows = measured_report.rows
    assert measured == sorted((r["score"], r["accuracy_low"], r["accuracy_high"]) for r in rows)
    # the study's two points on their own (10,000-image) intervals, beside this run's 12
    study = [(p["score"], *wilson(p["accuracy"], figures.STUDY_TEST_IMAGES))
             for p in figures.STUDY_POINTS]
    assert nominal == sorted([(r["score_seed"], r["accuracy_low"], r["accuracy_high"])
                              for r in rows] + study)


def with_quartiles(result: tradeoff.Report, busy: str | None = None) -> tradeoff.Report:
    """Rows with latency quartiles: a narrow spread, wide (timed under load) for model `busy`."""
    rows = []
    for r in result.rows:
        median = r["latency_ms_b32"]
        spread = 0.5 * median if r["model"] == busy else 0.05 * median
        rows.append({**r, "latency_ms_b32_q1": median - spread / 2,
                     "latency_ms_b32_q3": median + spread / 2,
                     "latency_ms_b1_q1": r["latency_ms_b1"],
                     "latency_ms_b1_q3": r["latency_ms_b1"]})
    return dataclasses.replace(result, rows=rows)


def horizontal_bars(ax) -> list[tuple[float, float]]:
    """(left, right) of every horizontal error bar (the latency spreads), sorted."""
    found = []
    for collection in ax.collections:
        if collection.get_gid() == figures.INTERVAL or not hasattr(collection, "get_segments"):
            continue
        found += [(float(seg[0][0]), float(seg[1][0])) for seg in collection.get_segments()
                  if seg[0][1] == seg[1][1]]
    return sorted(found)


def test_figure_tradeoff_latency_is_per_image_and_leaves_fp16_out(quick_report):
    """On a CPU fp16 computes in fp32: its latency is fp32's, so the figure leaves it out and
    says so."""
    fig = figures.figure_tradeoff_latency(quick_report)
    assert counts(fig) == {"fp32": 4, "int8": 4}
    assert "ms per image at batch 32" in fig.axes[0].get_xlabel()
    xs = sorted(x for c in labelled(fig.axes[0].collections) for x, _ in c.get_offsets())
    assert xs == sorted(r["latency_ms_b32"] for r in quick_report.rows if r["quant"] != "fp16")
    assert "fp16 left out" in note(fig)


def test_latency_figure_without_quartiles_draws_no_spread_and_says_so(quick_report):
    """Archived reports predate the quartiles: medians only, and a note."""
    fig = figures.figure_tradeoff_latency(quick_report)
    assert horizontal_bars(fig.axes[0]) == []
    assert "no latency spread" in note(fig)


def test_latency_figure_draws_each_spread_and_rings_a_busy_measurement(measured_report):
    result = with_quartiles(measured_report, busy="s0.5-u0.5-int8")
    fig = figures.figure_tradeoff_latency(result)
    rows = [r for r in result.rows if r["quant"] != "fp16"]
    assert horizontal_bars(fig.axes[0]) == sorted(
        (r["latency_ms_b32_q1"], r["latency_ms_b32_q3"]) for r in rows)
    assert len(intervals(fig.axes[0])) == len(rows)  # and each accuracy's interval
    (busy,) = [v for k, v in plotted(fig).items() if k.startswith("timed under load")]
    busy_row = next(r for r in rows if r["model"] == "s0.5-u0.5-int8")
    assert busy == [(busy_row["latency_ms_b32"], busy_row["accuracy"])]
    assert "no latency spread" not in note(fig)


def test_figure_training_curves(quick_report):
    assert counts(figures.figure_training_curves(quick_report)) == {
        "baseline": 3, "s0.5": 2, "s0-u0.5": 2, "s0.5-u0.5": 2}


def test_training_curves_draw_each_runs_band_and_keep_fine_tunes_apart(measured_report):
    fig = figures.figure_training_curves(measured_report)
    lines = plotted(fig)
    assert [x for x, _ in lines["baseline"]] == [1, 2, 3]  # the baseline on whole epochs
    # fine-tunes shifted sideways (under 0.2 epoch), each to its own place
    starts = [lines[run][0][0] for run in ("s0.5", "s0-u0.5", "s0.5-u0.5")]
    assert len(set(starts)) == 3 and all(abs(x - 1) < 0.2 for x in starts)
    # one band edge per epoch of every run: 3 + 2 + 2 + 2
    found = intervals(fig.axes[0])
    assert len(found) == 9
    assert (1.0, *wilson(0.4)) in found  # the baseline's first epoch (test accuracy 0.4)
    assert list(fig.axes[0].get_xticks()) == [1, 2, 3]


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
    grid = Grid((0,), (0,), ("fp32",))
    single = tradeoff.load(grid, write_inputs(tmp_path, grid), test_images=N)
    assert plotted(figures.figure_finetune_loss(single)) == {}
    assert by_axis(figures.figure_tradeoff_final(single))[0]["Pareto front"] == 1
    for draw in figures.FIGURES.values():
        assert draw(single).axes


def test_redraw_reads_the_test_set_size_from_the_archived_tables(tmp_path):
    import redraw_figures

    (tmp_path / "tradeoff.md").write_text(
        "| data | folder `x.tar.gz`: 50,000 train / 10,000 test images |\n")
    assert redraw_figures.test_images_of(tmp_path) == 10_000
    assert redraw_figures.test_images_of(tmp_path / "missing") is None



