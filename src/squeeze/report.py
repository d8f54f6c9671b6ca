"""The trade-off report: the params grid's per-model metric files -> Pareto front, score budgets,
tables and figures.

It reads only what earlier stages wrote (it never evaluates a model) and imports no torch,
training, pruning or quantization code, so it loads in a moment. It reads the files of the grid
that params lists, never a glob, so files left over from an earlier grid cannot leak in.
Figures use matplotlib's object API on the Agg canvas: no pyplot state, no display needed.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from .config import ConfigError, grid as validated_grid, section
from .fsutil import atomic_path, read_json, write_json, write_text
from .history import HISTORY_COLUMNS, read_history
from .names import file_stem, model_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BUDGETS = (2.0, 1.0, 0.5, 0.25)  # score budgets of the summary (the study's baseline is ~4)
BASELINE = (0, 0, "fp32")  # (structured, unstructured, quant) of the unpruned float model

# The study's published results, drawn on the final trade-off for reference. Its tables give only
# these two (accuracy, score) points; no other point of the study is known, so none is drawn.
STUDY_LABEL = "study (published)"
STUDY_POINTS = (
    {"model": "baseline", "accuracy": 0.935, "score": 3.98778},
    {"model": "s0.5-u0.5-fp16", "accuracy": 0.9287, "score": 0.7475},
)

CSV_COLUMNS = ("model", "structured", "unstructured", "quant", "accuracy", "accuracy_float",
               "accuracy_before_finetune", "score", "score_seed", "params", "nonzero_params",
               "sparsity", "ops", "latency_ms_b1", "latency_ms_b32", "latency_threads", "cpu",
               "size_bytes", "pareto")
CURVE_COLUMNS = ("run", "stage", "structured", "unstructured", *HISTORY_COLUMNS)


class MissingInputError(ConfigError):
    """A file of the params grid is missing: no earlier stage has written it for these params.
    (A ConfigError, so a stage prints it as one line: most often the grid and the files differ.)"""


# ---- the grid and its files --------------------------------------------------------------------

@dataclass(frozen=True)
class Grid:
    """The params grid with amounts as params.yaml holds them: their spelling names the files."""
    structured: tuple
    unstructured: tuple
    quant: tuple[str, ...]

    @classmethod
    def from_params(cls, params: Mapping) -> "Grid":
        validated_grid(params)  # one-line errors for a bad grid; the raw values are kept below
        return cls(tuple(section(params, "prune.structured")["amounts"]),
                   tuple(section(params, "prune.unstructured")["amounts"]),
                   tuple(section(params, "quantize")["types"]))

    def model_files(self, directory: Path) -> list[Path]:
        return [Path(directory) / f"{file_stem(s, u, q)}.json"
                for s in self.structured for u in self.unstructured for q in self.quant]

    def log_files(self, directory: Path) -> list[tuple[dict, Path]]:
        """(run, path) of the per-epoch log of the baseline and of every fine-tune."""
        directory = Path(directory)
        logs = [({"run": "baseline", "stage": "baseline", "structured": None,
                  "unstructured": None}, directory / "baseline.csv")]
        logs += [({"run": model_name(s), "stage": "structured", "structured": float(s),
                   "unstructured": None}, directory / f"{file_stem(s)}.csv")
                 for s in self.structured]
        logs += [({"run": model_name(s, u), "stage": "unstructured", "structured": float(s),
                   "unstructured": float(u)}, directory / f"{file_stem(s, u)}.csv")
                 for s in self.structured for u in self.unstructured]
        return logs


def require_files(paths: Sequence[Path]) -> None:
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MissingInputError(f"{missing[0]} is missing{more}; the params grid needs it: "
                                "run `dvc repro` to produce it")


# ---- the report's data -------------------------------------------------------------------------

@dataclass(frozen=True)
class Report:
    rows: list[dict]    # one per model, in grid order, CSV_COLUMNS with `pareto` set
    curves: list[dict]  # one per epoch of the baseline and of every fine-tune, CURVE_COLUMNS

    def summary(self) -> dict:
        return summarize(self.rows)


def load(grid: Grid, models_dir: Path, logs_dir: Path) -> Report:
    """Every model file and log of the grid; a missing one is a MissingInputError naming it."""
    model_files = grid.model_files(models_dir)
    logs = grid.log_files(logs_dir)
    require_files(model_files + [path for _, path in logs])
    return Report(rows=with_pareto([read_json(p) for p in model_files]),
                  curves=[row for run, path in logs for row in read_log(path, run)])


def read_log(path: Path, run: Mapping) -> list[dict]:
    """A per-epoch log (history.write_history) as curve rows; none where nothing was trained."""
    return [{**run, **row} for row in read_history(path)]


def dominates(a: Mapping, b: Mapping) -> bool:
    """a is at least as accurate and at most as costly as b, and strictly better in one."""
    return (a["accuracy"] >= b["accuracy"] and a["score"] <= b["score"]
            and (a["accuracy"] > b["accuracy"] or a["score"] < b["score"]))


def pareto_flags(models: Sequence[Mapping]) -> list[bool]:
    """True for each model that no other model dominates (equal models are both kept)."""
    return [not any(dominates(other, model) for other in models) for model in models]


def with_pareto(models: Sequence[Mapping]) -> list[dict]:
    """Report rows: the CSV columns of each model file, the name from its amounts, the flag."""
    return [{**{c: model.get(c) for c in CSV_COLUMNS},
             "model": model_name(model["structured"], model["unstructured"], model["quant"]),
             "pareto": flag}
            for model, flag in zip(models, pareto_flags(models))]


def best_under_budget(rows: Sequence[Mapping], budget: float, key: str = "score") -> dict:
    """The most accurate model with row[key] <= budget (ties: the cheaper, then the first listed).

    key "score" (measured counts) or "score_seed" (the study's nominal formula, which puts a
    reduced-width run's models on the study's scale)."""
    fitting = [r for r in rows if r[key] <= budget]
    if not fitting:
        return {"model": None, "accuracy": None, key: None}
    best = min(fitting, key=lambda r: (-r["accuracy"], r[key]))
    return {"model": best["model"], "accuracy": best["accuracy"], key: best[key]}


def find_baseline(rows: Sequence[Mapping]) -> dict | None:
    structured, unstructured, quant = BASELINE
    return next((r for r in rows if r["structured"] == structured
                 and r["unstructured"] == unstructured and r["quant"] == quant), None)


def front(rows: Sequence[Mapping]) -> list[dict]:
    """The Pareto models, cheapest first."""
    return sorted((r for r in rows if r["pareto"]), key=lambda r: (r["score"], -r["accuracy"]))


def summarize(rows: Sequence[Mapping]) -> dict:
    baseline = find_baseline(rows)
    pareto = [r["model"] for r in front(rows)]
    return {
        "models": len(rows),
        # null where the grid has no s0-u0-fp32 model (amount 0 or fp32 left out of params)
        "baseline": None if baseline is None else {
            k: baseline[k] for k in ("model", "accuracy", "score")},
        "budgets": {f"score<={b}": best_under_budget(rows, b) for b in BUDGETS},
        # the same on the study's nominal score: at a reduced width (a profile) every model's
        # measured score is far under the budgets, its score_seed is not
        "budgets_seed": {f"score_seed<={b}": best_under_budget(rows, b, "score_seed")
                         for b in BUDGETS},
        "pareto_count": len(pareto),
        "pareto": pareto,
    }


# ---- files -------------------------------------------------------------------------------------

def csv_text(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(row[c]) for c in columns] for row in rows)
    return out.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # amount 0, not 0.0, as in model names
    return str(value)


def write_outputs(report: Report, *, csv_path: Path, summary_path: Path, tables_path: Path,
                  curves_path: Path, figures_dir: Path,
                  settings: Sequence[tuple[str, str]] = ()) -> dict:
    summary = report.summary()
    write_text(csv_path, csv_text(report.rows, CSV_COLUMNS))
    write_text(curves_path, csv_text(report.curves, CURVE_COLUMNS))
    write_json(summary_path, summary)
    write_text(tables_path, markdown(report, summary, settings))
    write_figures(report, figures_dir)
    return summary


# ---- markdown tables ---------------------------------------------------------------------------

def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _num(value) -> str:
    return "—" if value is None else f"{value:.5g}"


def _mark(row: Mapping) -> str:
    return "✓" if row["pareto"] else ""


def md_table(header: Sequence[str], lines: Sequence[Sequence]) -> str:
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)


def markdown(report: Report, summary: Mapping, settings: Sequence[tuple[str, str]] = ()) -> str:
    """The tables; `settings` (provenance.describe) first, where given, so a copy is labelled."""
    run = ["## Run", md_table(["setting", "value"], settings)] if settings else []
    parts = ["# Trade-off report", *run, _overview(summary), _structured_section(report.rows),
             _unstructured_section(report.rows), _quantized_section(report.rows),
             _budget_section(summary)]
    return "\n\n".join(parts) + "\n"


def _overview(summary: Mapping) -> str:
    baseline = summary["baseline"]
    base = ("no baseline (s0-u0-fp32) in this grid" if baseline is None else
            f"baseline {baseline['model']}: accuracy {_pct(baseline['accuracy'])}%, "
            f"score {_num(baseline['score'])}")
    return (f"{summary['models']} models; {base}. Accuracies are test-set percentages; score "
            "(lower is better) counts nonzero parameters and operations at their bit widths. "
            "✓ marks the Pareto front (no other model is at least as accurate and at most as "
            f"costly): {', '.join(summary['pareto'])}.")


def _float_rows(rows: Sequence[Mapping]) -> list[Mapping]:
    return [r for r in rows if r["quant"] == "fp32"]


def _structured_section(rows: Sequence[Mapping]) -> str:
    title = "## Structured pruning (fp32, before unstructured pruning)"
    base = [r for r in _float_rows(rows) if r["unstructured"] == 0]
    if not base:
        return f"{title}\n\nNeeds unstructured amount 0 and fp32 in the grid."
    header = ["structured", "model", "params", "accuracy before fine-tune",
              "accuracy after fine-tune", "score", "Pareto"]
    lines = [[_cell(r["structured"]), r["model"], r["params"], _pct(r["accuracy_before_finetune"]),
              _pct(r["accuracy_float"]), _num(r["score"]), _mark(r)] for r in base]
    return f"{title}\n\n{md_table(header, lines)}"


def _unstructured_section(rows: Sequence[Mapping]) -> str:
    float_rows = _float_rows(rows)
    if not float_rows:
        return "## Unstructured pruning (fp32)\n\nNeeds fp32 in quantize.types."
    header = ["unstructured", "model", "nonzero params", "sparsity", "accuracy before fine-tune",
              "accuracy after fine-tune", "score", "Pareto"]
    tables = []
    for structured in dict.fromkeys(r["structured"] for r in float_rows):
        lines = [[_cell(r["unstructured"]), r["model"], r["nonzero_params"],
                  _num(r["sparsity"]),
                  # at amount 0 the before-fine-tune accuracy carried in the file is structured's
                  _pct(r["accuracy_before_finetune"] if r["unstructured"] else None),
                  _pct(r["accuracy_float"]), _num(r["score"]), _mark(r)]
                 for r in float_rows if r["structured"] == structured]
        tables.append(f"## Unstructured pruning of {model_name(structured)} (fp32)\n\n"
                      + md_table(header, lines))
    return "\n\n".join(tables)


def _quantized_section(rows: Sequence[Mapping]) -> str:
    header = ["model", "quant", "accuracy", "float accuracy", "score", "score (study formula)",
              "latency b1 (ms)", "latency b32 (ms)", "size (KiB)", "Pareto"]
    lines = [[r["model"], r["quant"], _pct(r["accuracy"]), _pct(r["accuracy_float"]),
              _num(r["score"]), _num(r["score_seed"]), _num(r["latency_ms_b1"]),
              _num(r["latency_ms_b32"]), _num(r["size_bytes"] / 1024), _mark(r)] for r in rows]
    return f"## After quantization (every model)\n\n{md_table(header, lines)}"


def _budget_section(summary: Mapping) -> str:
    tables = []
    for budgets, key, what in (("budgets", "score", "score"),
                               ("budgets_seed", "score_seed", "score (study formula)")):
        lines = [[budget.split("<=")[1], best["model"] or "none fits", _pct(best["accuracy"]),
                  _num(best[key])] for budget, best in summary[budgets].items()]
        tables.append(f"## Best accuracy within a {what} budget\n\n"
                      + md_table([f"{what} budget", "model", "accuracy", what], lines))
    return "\n\n".join(tables)


# ---- figures -----------------------------------------------------------------------------------

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
        ax.plot([r[x] for r in rows], [r[y] for r in rows], marker="o", **style)


def _tradeoff_axes(ax: "Axes", title: str) -> None:
    ax.set(title=title, xlabel="score (lower is better)", ylabel="test accuracy")
    ax.grid(alpha=0.3)


def figure_finetune_loss(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    runs = [r for r in report.curves if r["stage"] == "structured"]
    for structured, rows in _by(runs, "structured").items():
        _line(ax, rows, "epoch", "train_loss", label=f"structured {structured:g}")
    ax.set(title="Fine-tune loss after structured pruning", xlabel="epoch", ylabel="train loss")
    _note_if_empty(ax, "structured fine-tune")
    if ax.has_data():
        ax.legend()
    return fig


def figure_accuracy_vs_pruning(report: Report) -> "Figure":
    fig, (left, right) = new_figure(ncols=2)
    float_rows = _float_rows(report.rows)
    structured = [r for r in float_rows if r["unstructured"] == 0]
    # unpruned (amount 0), there is no fine-tune: "before" is the model's own accuracy
    before = [{**r, "before": r["accuracy_float"] if r["structured"] == 0
               else r["accuracy_before_finetune"]} for r in structured]
    _line(left, before, "structured", "before", label="before fine-tune", linestyle="--")
    _line(left, structured, "structured", "accuracy_float", label="after fine-tune")
    left.set(title="Structured pruning (fp32)", xlabel="structured amount", ylabel="test accuracy")
    for amount, rows in _by(float_rows, "structured").items():
        _line(right, rows, "unstructured", "accuracy_float", label=f"structured {amount:g}")
    right.set(title="Unstructured pruning per structured base (fp32)",
              xlabel="unstructured amount", ylabel="test accuracy")
    for ax, what in ((left, "fp32 model with unstructured 0"), (right, "fp32 model")):
        _note_if_empty(ax, what)
        if ax.has_data():
            ax.legend()
    return fig


def figure_tradeoff_structured(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    rows = [r for r in _float_rows(report.rows) if r["unstructured"] == 0]
    _line(ax, rows, "score", "accuracy", label="fp32, structured pruning only")
    for r in rows:
        ax.annotate(f"s{r['structured']:g}", (r["score"], r["accuracy"]),
                    textcoords="offset points", xytext=(4, 4))
    _tradeoff_axes(ax, "Trade-off after structured pruning")
    _note_if_empty(ax, "fp32 model with unstructured 0")
    return fig


def figure_tradeoff_unstructured(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    for amount, rows in _by(_float_rows(report.rows), "structured").items():
        _line(ax, rows, "score", "accuracy", label=f"base structured {amount:g}")
    _tradeoff_axes(ax, "Trade-off after unstructured pruning, per structured base (fp32)")
    _note_if_empty(ax, "fp32 model")
    if ax.has_data():
        ax.legend()
    return fig


def _scatter_by_quant(ax: "Axes", rows: Sequence[Mapping], x: str) -> None:
    """Accuracy against `x`, one colour per quantization type."""
    for quant, group in _by(rows, "quant").items():
        ax.scatter([r[x] for r in group], [r["accuracy"] for r in group], label=quant)


def figure_tradeoff_final(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    _scatter_by_quant(ax, report.rows, "score")
    pareto = front(report.rows)
    ax.step([r["score"] for r in pareto], [r["accuracy"] for r in pareto], where="post",
            color="black", linewidth=1, label="Pareto front")
    ax.scatter([p["score"] for p in STUDY_POINTS], [p["accuracy"] for p in STUDY_POINTS],
               marker="*", s=160, color="grey", label=STUDY_LABEL)
    for point in STUDY_POINTS:
        ax.annotate(f"study: {point['model']}", (point["score"], point["accuracy"]),
                    textcoords="offset points", xytext=(-8, -4), ha="right", va="top",
                    fontsize="small", color="grey")
    ax.set_xscale("log")  # this run's scores and the study's can be decades apart
    _tradeoff_axes(ax, "Final trade-off (all models) with the Pareto front")
    ax.legend()
    return fig


def figure_tradeoff_latency(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    _scatter_by_quant(ax, report.rows, "latency_ms_b32")
    ax.set(title="Accuracy against measured CPU latency (batch 32)",
           xlabel="latency per batch of 32 (ms, median)", ylabel="test accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def figure_training_curves(report: Report) -> "Figure":
    fig, (ax,) = new_figure()
    for run, rows in _by(report.curves, "run").items():
        _line(ax, rows, "epoch", "test_accuracy", label=run,
              linestyle="-" if run == "baseline" else "--")
    ax.set(title="Test accuracy per epoch: baseline and every fine-tune", xlabel="epoch",
           ylabel="test accuracy")
    _note_if_empty(ax, "training log")
    if ax.has_data():  # beside the axes: a full grid has 31 runs
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
    return fig


FIGURES: dict[str, Callable[[Report], "Figure"]] = {
    "finetune_loss": figure_finetune_loss,
    "accuracy_vs_pruning": figure_accuracy_vs_pruning,
    "tradeoff_structured": figure_tradeoff_structured,
    "tradeoff_unstructured": figure_tradeoff_unstructured,
    "tradeoff_final": figure_tradeoff_final,
    "tradeoff_latency": figure_tradeoff_latency,
    "training_curves": figure_training_curves,
}


def write_figures(report: Report, directory: Path) -> list[Path]:
    paths = []
    for name, draw in FIGURES.items():
        path = Path(directory) / f"{name}.png"
        with atomic_path(path) as tmp:
            draw(report).savefig(tmp, format="png", dpi=100)
        paths.append(path)
    return paths
