"""The report's figures (PNG), drawn from the joined rows and per-epoch curves of tradeoff.py.

matplotlib's object API on the Agg canvas: no pyplot state, no display needed. Scores are drawn
on one axis only with scores of the same kind: this run's measured score, or the study's nominal
score (`score_seed`, the study's formula on the full-width counts), never the two mixed.

Every accuracy is drawn with its 95% interval (Wilson, on the test set's size): error bars on
scattered points, a band along a line, so two points inside each other's noise read as a tie.
Every latency is drawn with its spread (first to third quartile over the timed repeats).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from ..fsutil import atomic_path
from ..names import model_name
from .tradeoff import Report, accuracy_interval, front, latency_under_load

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
STUDY_TEST_IMAGES = 10_000  # the study reports on CIFAR-10's whole test set: its intervals
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", ":", "-.")
INTERVAL = "ci95"  # the gid of every artist that draws an accuracy's 95% interval
# An accuracy axis spans at least this much, so a difference inside the noise (the quick
# profile's interval is +-3 points, the full test set's +-0.8) is never zoomed into a slope.
MIN_ACCURACY_SPAN = 0.10


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


def note(fig: "Figure", *lines: str) -> None:
    """Small print under the figure: how to read its intervals, what it leaves out."""
    import textwrap

    width = int(fig.get_figwidth() * 15)  # characters of small print per line
    text = "\n".join(textwrap.fill(line, width) for line in lines if line)
    fig.supxlabel(text, fontsize="small", color="0.3")


def _by(rows: Sequence[Mapping], key: str) -> dict:
    """rows grouped by the value of `key`, groups in first-seen order."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return groups


def _line(ax: "Axes", rows: Sequence[Mapping], x: str, y: str, **style):
    rows = [r for r in rows if r[y] is not None]
    if rows:
        return ax.plot([r[x] for r in rows], [r[y] for r in rows], **{"marker": "o", **style})[0]
    return None


# ---- 95% intervals -----------------------------------------------------------------------------

def interval(row: Mapping, key: str, test_images: int | None) -> tuple[float, float] | None:
    """The 95% interval of row[key], an accuracy on `test_images` images; None where unknown.
    The model's own accuracy keeps the interval the report computed for it."""
    if key == "accuracy" and row.get("accuracy_low") is not None:
        return row["accuracy_low"], row["accuracy_high"]
    if row.get(key) is None or not test_images:
        return None
    return accuracy_interval(row[key], test_images)


def interval_note(test_images: int | None) -> str:
    if not test_images:
        return "no 95% intervals drawn: this report does not record the test set's size"
    return (f"bars and bands: 95% interval of each accuracy ({test_images:,} test images, "
            "Wilson); points whose intervals overlap are a tie")


def _bars(ax: "Axes", xs: Sequence, ys: Sequence, intervals: Sequence, color) -> None:
    """Vertical 95% error bars (gid INTERVAL) at each point whose interval is known."""
    known = [(x, y, i) for x, y, i in zip(xs, ys, intervals) if i is not None]
    if not known:
        return
    bars = ax.errorbar([x for x, _, _ in known], [y for _, y, _ in known],
                       yerr=[[y - i[0] for _, y, i in known], [i[1] - y for _, y, i in known]],
                       fmt="none", ecolor=color, elinewidth=1, capsize=3)
    for artist in bars.lines[2]:
        artist.set_gid(INTERVAL)


def _band(ax: "Axes", xs: Sequence, intervals: Sequence, color) -> None:
    """A shaded 95% band (gid INTERVAL) along a line; error bars where the line is one point."""
    known = sorted((x, i) for x, i in zip(xs, intervals) if i is not None)
    if len(known) == 1:
        (x, (low, high)), = known
        _bars(ax, [x], [(low + high) / 2], [(low, high)], color)
    elif known:
        band = ax.fill_between([x for x, _ in known], [i[0] for _, i in known],
                               [i[1] for _, i in known], color=color, alpha=0.15, linewidth=0)
        band.set_gid(INTERVAL)


def accuracy_line(ax: "Axes", rows: Sequence[Mapping], x: str, y: str,
                  test_images: int | None, bars: bool = False, **style):
    """Accuracy row[y] against row[x] as a line with its 95% interval: a band, or error bars
    (`bars`, for a log axis or a line of few points)."""
    rows = [r for r in rows if r[y] is not None]
    line = _line(ax, rows, x, y, **style)
    if line is not None:
        intervals = [interval(r, y, test_images) for r in rows]
        xs = [r[x] for r in rows]
        if bars:
            _bars(ax, xs, [r[y] for r in rows], intervals, line.get_color())
        else:
            _band(ax, xs, intervals, line.get_color())
    return line


def readable_accuracy_axis(ax: "Axes", min_span: float = MIN_ACCURACY_SPAN) -> None:
    """A y range holding every point and interval drawn, at least `min_span` tall."""
    if not ax.has_data():
        return
    low, high = ax.dataLim.intervaly
    span = max(high - low, min_span)
    centre = (low + high) / 2
    low, high = centre - span / 2, centre + span / 2
    if low < 0:
        low, high = 0.0, high - low
    if high > 1:
        low, high = max(low - (high - 1), 0.0), 1.0
    pad = 0.05 * (high - low)
    ax.set_ylim(low - pad, high + pad)


def epoch_axis(ax: "Axes", rows: Sequence[Mapping]) -> None:
    """Whole epochs only, 1 to the longest run (a 1-epoch run gets the one tick "1")."""
    last = max((int(r["epoch"]) for r in rows), default=1)
    step = -(-last // 10)  # at most about ten ticks
    ax.set_xticks(range(1, last + 1, step))
    ax.set_xlim(0.5, last + 0.5)


# ---- the figures -------------------------------------------------------------------------------

def _float_rows(rows: Sequence[Mapping]) -> list[Mapping]:
    return [r for r in rows if r["quant"] == "fp32"]


def _tradeoff_axes(ax: "Axes", title: str, score: str = "score",
                   norms: tuple[float, float] | None = None) -> None:
    """norms: the measured score's (params_norm, ops_norm) where they are not the study's."""
    label = ("score, measured (log; lower is better)" if score == "score" else
             "score, the study's nominal formula (log; lower is better)")
    if score == "score" and norms:
        label = (f"score, measured: nonzero params/{norms[0]:,.0f} + ops/{norms[1]:,.0f} "
                 "(log; lower is better)")
    ax.set(title=title, xlabel=label, ylabel="test accuracy")
    log_axis(ax)
    ax.grid(alpha=0.3)
    readable_accuracy_axis(ax)


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
    """Train loss of each structured fine-tune per epoch, against the baseline's last epoch: how
    far the fine-tune brings the pruned net back. A 1-epoch fine-tune is one point per run."""
    fig, (ax,) = new_figure()
    runs = [r for r in report.curves if r["stage"] == "structured"]
    for structured, rows in _by(runs, "structured").items():
        _line(ax, rows, "epoch", "train_loss", label=f"structured {structured:g}")
    baseline = [r for r in report.curves if r["stage"] == "baseline"]
    if runs and baseline:
        last = baseline[-1]
        ax.axhline(last["train_loss"], color="black", linestyle=":", linewidth=1,
                   label=f"baseline, its last epoch ({int(last['epoch'])})")
    ax.set(title="Fine-tune loss after structured pruning", xlabel="fine-tune epoch",
           ylabel="train loss (mean over the epoch)")
    epoch_axis(ax, runs)
    ax.grid(alpha=0.3)
    _note_if_empty(ax, "structured fine-tune")
    _legend(ax)
    one = {int(r["epoch"]) for r in runs} == {1}
    note(fig, "each fine-tune ran 1 epoch: one point per run" if one else "",
         "dotted: the unpruned baseline's loss in its last epoch, for reference" if baseline
         and runs else "")
    return fig


def figure_accuracy_vs_pruning(report: Report) -> "Figure":
    fig, (left, right) = new_figure(ncols=2)
    n = report.test_images
    float_rows = _float_rows(report.rows)
    structured = [r for r in float_rows if r["unstructured"] == 0]
    accuracy_line(left, structured, "structured", "accuracy_pruned_structured", n,
                  label="right after pruning", linestyle="--")
    accuracy_line(left, structured, "structured", "accuracy_float", n, label="after fine-tune")
    left.set(title="Structured pruning (fp32)", xlabel="structured amount", ylabel="test accuracy")
    for amount, rows in _by(float_rows, "structured").items():
        accuracy_line(right, rows, "unstructured", "accuracy_float", n,
                      label=f"structured {amount:g}")
    right.set(title="Unstructured pruning per structured base (fp32)",
              xlabel="unstructured amount", ylabel="test accuracy")
    for ax, what in ((left, "fp32 model with unstructured 0"), (right, "fp32 model")):
        readable_accuracy_axis(ax)
        ax.grid(alpha=0.3)
        _note_if_empty(ax, what)
        _legend(ax)
    note(fig, interval_note(n))
    return fig


def figure_tradeoff_structured(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    rows = [r for r in _float_rows(report.rows) if r["unstructured"] == 0]
    accuracy_line(ax, rows, "score", "accuracy", report.test_images, bars=True,
                  label="fp32, structured pruning only")
    for r in rows:
        ax.annotate(model_name(r["structured"]), (r["score"], r["accuracy"]),
                    textcoords="offset points", xytext=(5, 4))
    _tradeoff_axes(ax, "Trade-off after structured pruning (fp32)", norms=report.score_norms)
    _note_if_empty(ax, "fp32 model with unstructured 0")
    note(fig, interval_note(report.test_images))
    return fig


def figure_tradeoff_unstructured(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    for amount, rows in _by(_float_rows(report.rows), "structured").items():
        accuracy_line(ax, rows, "score", "accuracy", report.test_images, bars=True,
                      label=f"base structured {amount:g}")
    _tradeoff_axes(ax, "Trade-off after unstructured pruning, per structured base (fp32)",
                   norms=report.score_norms)
    _note_if_empty(ax, "fp32 model")
    _legend(ax)
    note(fig, interval_note(report.test_images))
    return fig


def _scatter_by_quant(ax: "Axes", rows: Sequence[Mapping], x: str, test_images: int | None,
                      xerr: Callable[[Mapping], tuple | None] | None = None) -> None:
    """Accuracy against `x` with its 95% interval, one colour and marker per quantization type;
    `xerr` gives a point's (low, high) spread on x, where it has one."""
    for i, (quant, group) in enumerate(_by(rows, "quant").items()):
        color = f"C{i}"
        xs, ys = [r[x] for r in group], [r["accuracy"] for r in group]
        ax.scatter(xs, ys, label=quant, marker=MARKERS[i % len(MARKERS)], color=color, zorder=3)
        _bars(ax, xs, ys, [interval(r, "accuracy", test_images) for r in group], color)
        spreads = [(r[x], r["accuracy"], xerr(r)) for r in group] if xerr else []
        spreads = [(px, py, s) for px, py, s in spreads if s is not None]
        if spreads:
            ax.errorbar([px for px, _, _ in spreads], [py for _, py, _ in spreads],
                        xerr=[[px - s[0] for px, _, s in spreads],
                              [s[1] - px for px, _, s in spreads]],
                        fmt="none", ecolor=color, elinewidth=1.5, capsize=0, alpha=0.6)


def figure_tradeoff_final(report: Report) -> "Figure":
    """Left: this run on its measured score, with its Pareto front. Right: this run on the
    study's nominal score, the only axis on which the study's published points belong."""
    fig, (measured, nominal) = new_figure(ncols=2)
    n = report.test_images
    _scatter_by_quant(measured, report.rows, "score", n)
    pareto = front(report.rows)
    measured.step([r["score"] for r in pareto], [r["accuracy"] for r in pareto], where="post",
                  color="black", linewidth=1, label="Pareto front")
    if report.network:  # the study's nominal score scales ResNet-18's counts: not this network's
        _tradeoff_axes(measured, f"{report.network}, measured score, with its Pareto front",
                       norms=report.score_norms)
        _legend(measured)
        nominal.axis("off")
        nominal.text(0.5, 0.5, f"The study's nominal score (score_seed) scales ResNet-18's\n"
                     f"counts by the pruning amounts: it does not describe\n{report.network}, "
                     "and the study's published points are ResNet-18's.\nCompare on the measured "
                     "score (left).", ha="center", va="center", transform=nominal.transAxes,
                     color="dimgrey")
        note(fig, interval_note(n))
        return fig
    _tradeoff_axes(measured, "This run, measured score, with its Pareto front",
                   norms=report.score_norms)
    # the study's formula does not apply to mixed bits (a low-bit model with 8-bit ends)
    _scatter_by_quant(nominal, [r for r in report.rows if r["score_seed"] is not None],
                      "score_seed", n)
    study = [{**p, "accuracy_low": None} for p in STUDY_POINTS]
    nominal.scatter([p["score"] for p in study], [p["accuracy"] for p in study],
                    marker="*", s=160, color="grey", label=STUDY_LABEL, zorder=3)
    _bars(nominal, [p["score"] for p in study], [p["accuracy"] for p in study],
          [interval(p, "accuracy", STUDY_TEST_IMAGES) for p in study], "grey")
    for point in study:
        nominal.annotate(f"study: {point['model']}", (point["score"], point["accuracy"]),
                         textcoords="offset points", xytext=(-8, -4), ha="right", va="top",
                         fontsize="small", color="grey")
    _tradeoff_axes(nominal, "This run and the study, on the study's nominal score", "score_seed")
    for ax in (measured, nominal):
        _legend(ax)
    unscored = sorted({r["quant"] for r in report.rows if r["score_seed"] is None})
    note(fig, interval_note(n), f"the study's intervals: CIFAR-10's {STUDY_TEST_IMAGES:,} "
         "test images", *([f"{', '.join(unscored)}: per-layer bits, which the study's one-width "
                           "formula does not score: left panel only"] if unscored else []))
    return fig


def latency_spread(row: Mapping, batch: int = 32) -> tuple[float, float] | None:
    """(q1, q3) of a model's latency over its timed repeats; None where not recorded (reports
    older than the quartiles)."""
    q1, q3 = row.get(f"latency_ms_b{batch}_q1"), row.get(f"latency_ms_b{batch}_q3")
    return None if q1 is None or q3 is None else (q1, q3)


def computes_in_fp32(row: Mapping) -> bool:
    """fp16 timed on a CPU: its weights are rounded, its arithmetic is fp32's (quantize.py), so
    its latency is fp32's, not fp16's. Latency is always timed on the CPU."""
    return row["quant"] == "fp16"


def figure_tradeoff_latency(report: Report) -> "Figure":
    """Accuracy against batch-32 CPU latency: the median, its q1-q3 spread as a horizontal bar,
    a red ring where the machine was busy while it was timed. fp16 is left out: on a CPU it
    computes in fp32 and its latency is fp32's."""
    fig, (ax,) = new_figure()
    rows = [r for r in report.rows if not computes_in_fp32(r) and r["latency_ms_b32"] is not None]
    _scatter_by_quant(ax, rows, "latency_ms_b32", report.test_images, xerr=latency_spread)
    busy = [r for r in rows if latency_under_load(r)]
    if busy:
        ax.scatter([r["latency_ms_b32"] for r in busy], [r["accuracy"] for r in busy], s=260,
                   facecolors="none", edgecolors="red", linewidths=1.5, zorder=4,
                   label="timed under load\n(q3 - q1 > 25% of the median\nat batch 1 or 32)")
    ax.set(title="Accuracy against measured CPU latency",
           xlabel="CPU latency, ms per image at batch 32 (median; bar: q1-q3)",
           ylabel="test accuracy")
    ax.grid(alpha=0.3)
    readable_accuracy_axis(ax)
    _note_if_empty(ax, "model with a latency")
    _legend(ax, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))  # outside: no bar hidden
    left_out = any(computes_in_fp32(r) for r in report.rows)
    no_spread = bool(rows) and all(latency_spread(r) is None for r in rows)
    note(fig, interval_note(report.test_images),
         "fp16 left out: on a CPU it runs in fp32 with fp16-rounded weights, so its latency is "
         "fp32's" if left_out else "",
         "no latency spread drawn: this report predates the latency quartiles" if no_spread
         else "")
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
    fine_tunes = [run for run, rows in runs.items() if rows[0]["stage"] != "baseline"]
    for run, rows in runs.items():
        # fine-tunes spread sideways (at most +-0.2 epoch) so their points and bars stay apart
        shift = (0.4 * (fine_tunes.index(run) + 0.5) / len(fine_tunes) - 0.2
                 if run in fine_tunes else 0.0)
        shifted = [{**r, "epoch": r["epoch"] + shift} for r in rows]
        accuracy_line(ax, shifted, "epoch", "test_accuracy", report.test_images, label=run,
                      **run_style(rows[0], structured, unstructured))
    ax.set(title="Test accuracy per epoch: baseline and every fine-tune\n"
                 "(colour: structured amount; line and marker: unstructured amount)",
           xlabel="epoch (of each run)", ylabel="test accuracy")
    epoch_axis(ax, report.curves)
    ax.grid(alpha=0.3)
    readable_accuracy_axis(ax)
    _note_if_empty(ax, "training log")
    _legend(ax, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1),
            ncols=2 if len(runs) > 16 else 1)  # beside the axes: a full grid has 31 runs
    note(fig, interval_note(report.test_images),
         "fine-tunes are drawn up to 0.2 epoch off their whole epoch, so they do not overlap"
         if fine_tunes else "")
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
    if groups:
        note(fig, "no 95% intervals drawn: sensitivity.csv does not record how many images "
                  "measured it (params: sensitivity.images)")
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
