"""The report's figures (PNG), drawn from the joined rows and per-epoch curves of report.py.

matplotlib's object API on the Agg canvas: no pyplot state, no display needed. Scores are drawn
on one axis only with scores of the same kind: this run's measured score, or the study's nominal
score (`score_seed`, the study's formula on the full-width counts), never the two mixed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from .fsutil import atomic_path
from .report import Report, front

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# The study's published results, drawn beside this run's models on the study's nominal score.
# Its tables give only these two (accuracy, score) pairs; no other point of the study is known.
STUDY_LABEL = "study (published)"
STUDY_POINTS = (
    {"model": "baseline", "accuracy": 0.935, "score": 3.98778},
    {"model": "s0.5-u0.5-fp16", "accuracy": 0.9287, "score": 0.7475},
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", ":", "-.")


def new_figure(ncols: int = 1) -> tuple["Figure", list["Axes"]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4 * ncols, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _note_if_empty(ax: "Axes", what: str) -> None:
    if not ax.has_data():
        ax.text(0.5, 0.5, f"no {what} in this grid", ha="center", va="center",
                transform=ax.transAxes)


def _by(rows: Sequence[Mapping], key: str) -> dict:
    """rows grouped by the value of `key`, groups in first-seen order."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return groups


def _line(ax: "Axes", rows: Sequence[Mapping], x: str, y: str, **style) -> None:
    rows = [r for r in rows if r[y] is not None]
    if rows:
        ax.plot([r[x] for r in rows], [r[y] for r in rows], **{"marker": "o", **style})


def _float_rows(rows: Sequence[Mapping]) -> list[Mapping]:
    return [r for r in rows if r["quant"] == "fp32"]


def _tradeoff_axes(ax: "Axes", title: str, score: str = "score") -> None:
    label = ("score, measured (log; lower is better)" if score == "score" else
             "score, the study's nominal formula (log; lower is better)")
    ax.set(title=title, xlabel=label, ylabel="test accuracy")
    log_axis(ax)
    ax.grid(alpha=0.3)


def log_axis(ax: "Axes") -> None:
    """A log x axis with 1-2-5 ticks as plain numbers: a short log axis gets labels that
    neither vanish nor overlap."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _legend(ax: "Axes", **kwargs) -> None:
    if ax.has_data():
        ax.legend(**kwargs)


def figure_finetune_loss(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    runs = [r for r in report.curves if r["stage"] == "structured"]
    for structured, rows in _by(runs, "structured").items():
        _line(ax, rows, "epoch", "train_loss", label=f"structured {structured:g}")
    from matplotlib.ticker import MaxNLocator

    ax.set(title="Fine-tune loss after structured pruning", xlabel="epoch", ylabel="train loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _note_if_empty(ax, "structured fine-tune")
    _legend(ax)
    return fig


def figure_accuracy_vs_pruning(report: Report) -> "Figure":
    fig, (left, right) = new_figure(ncols=2)
    float_rows = _float_rows(report.rows)
    structured = [r for r in float_rows if r["unstructured"] == 0]
    _line(left, structured, "structured", "accuracy_pruned_structured",
          label="right after pruning", linestyle="--")
    _line(left, structured, "structured", "accuracy_float", label="after fine-tune")
    left.set(title="Structured pruning (fp32)", xlabel="structured amount", ylabel="test accuracy")
    for amount, rows in _by(float_rows, "structured").items():
        _line(right, rows, "unstructured", "accuracy_float", label=f"structured {amount:g}")
    right.set(title="Unstructured pruning per structured base (fp32)",
              xlabel="unstructured amount", ylabel="test accuracy")
    for ax, what in ((left, "fp32 model with unstructured 0"), (right, "fp32 model")):
        _note_if_empty(ax, what)
        _legend(ax)
    return fig


def figure_tradeoff_structured(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    rows = [r for r in _float_rows(report.rows) if r["unstructured"] == 0]
    _line(ax, rows, "score", "accuracy", label="fp32, structured pruning only")
    for r in rows:
        ax.annotate(f"s{r['structured']:g}", (r["score"], r["accuracy"]),
                    textcoords="offset points", xytext=(4, 4))
    _tradeoff_axes(ax, "Trade-off after structured pruning (fp32)")
    _note_if_empty(ax, "fp32 model with unstructured 0")
    return fig


def figure_tradeoff_unstructured(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    for amount, rows in _by(_float_rows(report.rows), "structured").items():
        _line(ax, rows, "score", "accuracy", label=f"base structured {amount:g}")
    _tradeoff_axes(ax, "Trade-off after unstructured pruning, per structured base (fp32)")
    _note_if_empty(ax, "fp32 model")
    _legend(ax)
    return fig


def _scatter_by_quant(ax: "Axes", rows: Sequence[Mapping], x: str) -> None:
    """Accuracy against `x`, one colour and marker per quantization type."""
    for i, (quant, group) in enumerate(_by(rows, "quant").items()):
        ax.scatter([r[x] for r in group], [r["accuracy"] for r in group], label=quant,
                   marker=MARKERS[i % len(MARKERS)])


def figure_tradeoff_final(report: Report) -> "Figure":
    """Left: this run on its measured score, with its Pareto front. Right: this run on the
    study's nominal score, the only axis on which the study's published points belong."""
    fig, (measured, nominal) = new_figure(ncols=2)
    _scatter_by_quant(measured, report.rows, "score")
    pareto = front(report.rows)
    measured.step([r["score"] for r in pareto], [r["accuracy"] for r in pareto], where="post",
                  color="black", linewidth=1, label="Pareto front")
    _tradeoff_axes(measured, "This run, measured score, with its Pareto front")
    _scatter_by_quant(nominal, report.rows, "score_seed")
    nominal.scatter([p["score"] for p in STUDY_POINTS], [p["accuracy"] for p in STUDY_POINTS],
                    marker="*", s=160, color="grey", label=STUDY_LABEL)
    for point in STUDY_POINTS:
        nominal.annotate(f"study: {point['model']}", (point["score"], point["accuracy"]),
                         textcoords="offset points", xytext=(-8, -4), ha="right", va="top",
                         fontsize="small", color="grey")
    _tradeoff_axes(nominal, "This run and the study, on the study's nominal score", "score_seed")
    for ax in (measured, nominal):
        _legend(ax)
    return fig


def figure_tradeoff_latency(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    _scatter_by_quant(ax, report.rows, "latency_ms_b32")
    ax.set(title="Accuracy against measured CPU latency",
           xlabel="CPU latency, ms per image at batch 32 (median)", ylabel="test accuracy")
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


def run_style(run: Mapping, structured_order: Sequence, unstructured_order: Sequence) -> dict:
    """Colour by structured amount, line style and marker by unstructured amount, so every run of
    a 5 x 5 grid (31 runs) is told apart; the baseline is black and thick."""
    from matplotlib import colormaps

    if run["stage"] == "baseline":
        return {"color": "black", "linewidth": 2.5, "linestyle": "-", "marker": "o"}
    colors = colormaps["viridis"]
    s_index = structured_order.index(run["structured"])
    color = colors(s_index / max(len(structured_order) - 1, 1) * 0.9)
    if run["stage"] == "structured":
        return {"color": color, "linewidth": 2, "linestyle": "-", "marker": "o"}
    u_index = unstructured_order.index(run["unstructured"])
    return {"color": color, "linewidth": 1, "linestyle": LINESTYLES[1 + u_index % 3],
            "marker": MARKERS[1 + u_index % (len(MARKERS) - 1)]}


def figure_training_curves(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    runs = _by(report.curves, "run")
    structured = sorted({r["structured"] for r in report.curves if r["structured"] is not None})
    unstructured = sorted({r["unstructured"] for r in report.curves
                           if r["unstructured"] is not None})
    for run, rows in runs.items():
        _line(ax, rows, "epoch", "test_accuracy", label=run,
              **run_style(rows[0], structured, unstructured))
    from matplotlib.ticker import MaxNLocator

    ax.set(title="Test accuracy per epoch: baseline and every fine-tune\n"
                 "(colour: structured amount; line and marker: unstructured amount)",
           xlabel="epoch (of each run)", ylabel="test accuracy")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _note_if_empty(ax, "training log")
    _legend(ax, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1),
            ncols=2 if len(runs) > 16 else 1)  # beside the axes: a full grid has 31 runs
    return fig


def figure_sensitivity(report: Report) -> "Figure":
    """Li et al.'s Figure 2: accuracy against the fraction of one group's filters removed, one
    line per group (the residual streams thick), every other group untouched."""
    fig, (ax,) = new_figure()
    groups = _by(report.sensitivity, "group")
    from matplotlib import colormaps

    colors = colormaps["tab20"]
    for i, (group, rows) in enumerate(groups.items()):
        base = rows[0]["accuracy"] + rows[0]["drop"]
        tied = " " in rows[0]["convs"]  # a residual stream: several convs pruned together
        points = [{"amount": 0.0, "accuracy": base}, *sorted(rows, key=lambda r: r["amount"])]
        _line(ax, points, "amount", "accuracy", color=colors(i % 20),
              linewidth=2.2 if tied else 1.2, linestyle="-" if tied else "--",
              marker=MARKERS[i % len(MARKERS)], markersize=4,
              label=f"{group} ({rows[0]['channels']})" + (" + tied" if tied else ""))
    fig.set_size_inches(9, 5)
    fig.suptitle("Sensitivity: each filter group pruned alone, no fine-tune (Li et al., Fig. 2)\n"
                 "held-out training images; solid = residual stream, dashed = block-internal conv")
    ax.set(xlabel="fraction of the group's filters removed", ylabel="accuracy")
    ax.grid(alpha=0.3)
    _note_if_empty(ax, "sensitivity measurement")
    _legend(ax, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
    return fig


FIGURES: dict[str, Callable[[Report], "Figure"]] = {
    "finetune_loss": figure_finetune_loss,
    "accuracy_vs_pruning": figure_accuracy_vs_pruning,
    "tradeoff_structured": figure_tradeoff_structured,
    "tradeoff_unstructured": figure_tradeoff_unstructured,
    "tradeoff_final": figure_tradeoff_final,
    "tradeoff_latency": figure_tradeoff_latency,
    "training_curves": figure_training_curves,
    "sensitivity": figure_sensitivity,
}


def write_figures(report: Report, directory: Path) -> list[Path]:
    paths = []
    for name, draw in FIGURES.items():
        path = Path(directory) / f"{name}.png"
        with atomic_path(path) as tmp:
            draw(report).savefig(tmp, format="png", dpi=100)
        paths.append(path)
    return paths
