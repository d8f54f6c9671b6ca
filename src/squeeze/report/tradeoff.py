"""The trade-off report: the params grid's per-model metric files -> Pareto front, score budgets,
tables and figures.

It reads only what earlier stages wrote (it never evaluates a model) and imports no torch,
training, pruning or quantization code, so it loads in a moment. It reads the files of the grid
that params lists, never a glob, so files left over from an earlier grid cannot leak in. Each
stage owns the metrics it measured; this module joins them on (structured, unstructured, quant):
- metrics/structured/s{s}.json        accuracy right after filter pruning and after its fine-tune
- metrics/unstructured/s{s}-u{u}.json the same for magnitude pruning; its `accuracy` is the float
                                      model's that every quantized model of it starts from
- metrics/models/s{s}-u{u}-{q}.json   the quantized model: accuracy, counts, scores, latency, size
- metrics/train/*.csv                 per-epoch logs of the baseline and every fine-tune
- metrics/sensitivity.csv             each filter group pruned alone (sensitivity stage)
Figures: figures.py.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..config import STUDY_NORMS, ConfigError, Grid
from ..fsutil import read_json, write_json, write_text
from ..history import HISTORY_COLUMNS, read_history
from ..names import file_stem, metrics_file, model_name
from ..sensitivity_table import FILE as SENSITIVITY_FILE, read as read_sensitivity

BUDGETS = (2.0, 1.0, 0.5, 0.25)  # score budgets of the summary (the study's baseline is ~4)
BASELINE = (0, 0, "fp32")  # (structured, unstructured, quant) of the unpruned float model

# From the quantize stage's file, then the joined accuracies of the stages before it:
#   accuracy_float                the fine-tuned float model it was quantized from (unstructured file)
#   accuracy_pruned_structured    right after filter pruning, before its fine-tune (structured file)
#   accuracy_pruned_unstructured  right after magnitude pruning, before its fine-tune
MODEL_COLUMNS = ("structured", "unstructured", "quant", "accuracy", "score", "score_seed",
                 "params", "nonzero_params", "sparsity", "ops", "latency_ms_b1", "latency_ms_b32",
                 "latency_ms_b1_q1", "latency_ms_b1_q3", "latency_ms_b32_q1", "latency_ms_b32_q3",
                 "latency_repeats", "latency_threads", "cpu", "size_bytes", "device", "device_name", "precision",
                 "runtime", "kernel", "score_params_norm", "score_ops_norm")
# score_params_norm/score_ops_norm: what its score divided the counts by (params' score section)
# accuracy_low/high: the 95% binomial (Wilson) interval of the accuracy on the test set's size,
# the noise of one measurement; checkpoint: the quantized model's file in the workspace
# bits: a low-bit model's layers per bit width ("w8a8 x2, w4a4 x17"), blank for the others
CSV_COLUMNS = ("model", *MODEL_COLUMNS[:4], "accuracy_low", "accuracy_high", "accuracy_float",
               "accuracy_pruned_structured", "accuracy_pruned_unstructured", *MODEL_COLUMNS[4:],
               "bits", "pareto", "checkpoint")
Z95 = 1.959964  # two-sided 95% normal quantile
# budgets of the headline metrics, as fractions of the baseline's own measured score: the same
# columns then mean the same thing at any width (the study's best, 0.7475, is ~1/5 of 3.98778)
HEADLINE_FRACTIONS = (4, 16, 64)
# a latency whose interquartile range exceeds this fraction of its median was measured on a
# machine busy with other work: the tables flag it
LATENCY_SPREAD_FLAG = 0.25


def accuracy_interval(accuracy: float, n: int) -> tuple[float, float]:
    """The Wilson score interval (95%) of a proportion `accuracy` measured on `n` images."""
    centre = (accuracy + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 / (1 + Z95 ** 2 / n) * (accuracy * (1 - accuracy) / n + Z95 ** 2 / (4 * n * n)) ** 0.5
    return round(max(centre - half, 0.0), 6), round(min(centre + half, 1.0), 6)
CURVE_COLUMNS = ("run", "stage", "structured", "unstructured", *HISTORY_COLUMNS)


class MissingInputError(ConfigError):
    """A file of the params grid is missing: no earlier stage has written it for these params.
    (A ConfigError, so a stage prints it as one line: most often the grid and the files differ.)"""


# ---- the grid and its files --------------------------------------------------------------------

def metric_files(grid: Grid, directory: Path) -> list[Path]:
    """Every per-stage metrics file the grid needs."""
    return ([metrics_file(directory, s) for s in grid.structured]
            + [metrics_file(directory, s, u) for s in grid.structured for u in grid.unstructured]
            + [metrics_file(directory, *point) for point in grid.points()])


def log_files(grid: Grid, directory: Path) -> list[tuple[dict, Path]]:
    """(run, path) of the per-epoch log of the baseline and of every fine-tune."""
    directory = Path(directory)
    logs = [({"run": "baseline", "stage": "baseline", "structured": None,
              "unstructured": None}, directory / "baseline.csv")]
    logs += [({"run": model_name(s), "stage": "structured", "structured": float(s),
               "unstructured": None}, directory / f"{file_stem(s)}.csv")
             for s in grid.structured]
    logs += [({"run": model_name(s, u), "stage": "unstructured", "structured": float(s),
               "unstructured": float(u)}, directory / f"{file_stem(s, u)}.csv")
             for s in grid.structured for u in grid.unstructured]
    logs += [({"run": model_name(s, u, q), "stage": "qat", "structured": float(s),
               "unstructured": float(u)}, directory / f"{file_stem(s, u, q)}.csv")
             for s in grid.structured for u in grid.unstructured
             for q in grid.all_types[len(grid.types):]]  # quantization-aware: wXaY, wmix<b>
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
    sensitivity: list[dict] = ()  # one per (filter group, amount): the sensitivity stage's rows
    test_images: int | None = None  # the test set's size: the 95% interval of every accuracy
    network: str | None = None  # model.arch where it is not the study's ResNet-18
    score_norms: tuple[float, float] | None = None  # (params, ops) norms, where not the study's

    def summary(self) -> dict:
        return summarize(self.rows)


def load(grid: Grid, metrics_dir: Path, test_images: int | None = None) -> Report:
    """Every metrics file and log of the grid, joined; a missing one is a MissingInputError
    naming it. test_images: the test set's size, for each accuracy's interval."""
    metrics_dir = Path(metrics_dir)
    logs = log_files(grid, metrics_dir / "train")
    sensitivity = metrics_dir / SENSITIVITY_FILE
    require_files(metric_files(grid, metrics_dir) + [path for _, path in logs] + [sensitivity])
    rows = with_pareto([joined(grid, metrics_dir, *point, test_images) for point in grid.points()])
    return Report(rows=rows, curves=[row for run, path in logs for row in read_log(path, run)],
                  sensitivity=read_sensitivity(sensitivity), test_images=test_images,
                  score_norms=score_norms(rows))


def score_norms(rows: Sequence[Mapping]) -> tuple[float, float] | None:
    """The (params, ops) normalisers every row's score used; None where they are the study's (or
    not recorded: metrics older than the score section). Rows that disagree: one line, since
    their scores cannot share an axis."""
    found = {(r.get("score_params_norm"), r.get("score_ops_norm")) for r in rows}
    if len(found) > 1:
        raise MissingInputError(f"the models' scores use different normalisers "
                                f"{sorted(found, key=str)}; rerun the quantize stages (dvc "
                                "repro) so they share params' score")
    norms = found.pop() if found else (None, None)
    return None if None in norms or norms == STUDY_NORMS else norms


def joined(grid: Grid, metrics_dir: Path, s, u, q, test_images: int | None = None) -> dict:
    """One model's row: its quantize file, and the accuracies of the stages that made it."""
    model = read_json(metrics_file(metrics_dir, s, u, q))
    floating = read_json(metrics_file(metrics_dir, s, u))
    structured = read_json(metrics_file(metrics_dir, s))
    low, high = (accuracy_interval(model["accuracy"], test_images) if test_images
                 else (None, None))
    return {**{c: model.get(c) for c in MODEL_COLUMNS},
            "accuracy_low": low, "accuracy_high": high,
            "checkpoint": f"models/quantized/{file_stem(s, u, q)}.pt",
            "bits": bits_summary(model.get("layer_bits")),
            "accuracy_float": floating["accuracy"],
            "accuracy_pruned_structured": structured["accuracy_pruned"],
            "accuracy_pruned_unstructured": floating["accuracy_pruned"]}


def bits_summary(layer_bits: Mapping[str, str] | None) -> str | None:
    """{layer: "w4a4"} -> "w8a8 x2, w4a4 x17" (widest first); None where there is none."""
    if not layer_bits:
        return None
    counts: dict[str, int] = {}
    for bits in layer_bits.values():
        counts[bits] = counts.get(bits, 0) + 1
    order = sorted(counts, key=lambda b: [-int(n) for n in b[1:].split("a")])
    return ", ".join(f"{b} x{counts[b]}" for b in order)


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
    """Report rows: the CSV columns of each joined model, the name from its amounts, the flag."""
    return [{**{c: model.get(c) for c in CSV_COLUMNS},
             "model": model_name(model["structured"], model["unstructured"], model["quant"]),
             "pareto": flag}
            for model, flag in zip(models, pareto_flags(models))]


def best_under_budget(rows: Sequence[Mapping], budget: float, key: str = "score") -> dict:
    """The most accurate model with row[key] <= budget (ties: the cheaper, then the first listed).

    key "score" (measured counts) or "score_seed" (the study's nominal formula, which puts a
    reduced-width run's models on the study's scale)."""
    fitting = [r for r in rows if r[key] is not None and r[key] <= budget]
    if not fitting:
        return {"model": None, "accuracy": None, "accuracy_low": None, "accuracy_high": None,
                key: None}
    best = min(fitting, key=lambda r: (-r["accuracy"], r[key]))
    return {"model": best["model"], "accuracy": best["accuracy"],
            "accuracy_low": best.get("accuracy_low"), "accuracy_high": best.get("accuracy_high"),
            key: best[key]}


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


def headline(report: "Report") -> dict:
    """The handful of numbers `dvc exp show` compares between experiments (reports/metrics.json):
    the baseline, the best accuracy at 4x, 16x and 64x lower score than the baseline, the
    front's size and mean accuracy over that range, the 95% interval's half width at the
    baseline's accuracy (the noise of every accuracy here), and the minutes spent training.
    All numeric, so the table stays narrow; model names are in summary.json and the report."""
    rows, baseline = report.rows, find_baseline(report.rows)
    out = {"models": len(rows)}
    if baseline is not None:
        base_score = baseline["score"]
        out.update(base_acc=baseline["accuracy"], base_score=base_score)
        if report.test_images:
            low, high = accuracy_interval(baseline["accuracy"], report.test_images)
            out["ci95"] = round((high - low) / 2, 4)
        for fraction in HEADLINE_FRACTIONS:
            best = best_under_budget(rows, base_score / fraction)
            out[f"acc_at_{fraction}x"] = best["accuracy"]
        out["front_auc"] = front_auc(rows, base_score / HEADLINE_FRACTIONS[-1], base_score)
    out["front"] = sum(1 for r in rows if r["pareto"])
    seconds = sum(r["epoch_seconds"] for r in report.curves if r.get("epoch_seconds"))
    out["train_min"] = round(seconds / 60, 2)
    return out


def front_auc(rows: Sequence[Mapping], low: float, high: float) -> float:
    """The best accuracy available at each budget, averaged over budgets spread evenly in
    log(score) from `low` to `high` (0 where no model fits): one number for a whole front."""
    span = math.log(high) - math.log(low)
    cuts = sorted({low, high, *(r["score"] for r in rows if low < r["score"] < high)})
    area = 0.0
    for left, right in zip(cuts, cuts[1:]):
        fitting = [r["accuracy"] for r in rows if r["score"] <= left]
        area += (max(fitting) if fitting else 0.0) * (math.log(right) - math.log(left))
    return round(area / span, 6)


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
                  curves_path: Path, settings: Sequence[tuple[str, str]] = (),
                  metrics_path: Path | None = None) -> dict:
    summary = report.summary()
    if metrics_path is not None:
        write_json(metrics_path, headline(report))
    write_text(csv_path, csv_text(report.rows, CSV_COLUMNS))
    write_text(curves_path, csv_text(report.curves, CURVE_COLUMNS))
    write_json(summary_path, summary)
    write_text(tables_path, markdown(report, summary, settings))
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
             _budget_section(summary), _sensitivity_section(report.sensitivity)]
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
    header = ["structured", "model", "params", "accuracy right after pruning",
              "accuracy after fine-tune", "score", "Pareto"]
    lines = [[_cell(r["structured"]), r["model"], r["params"],
              _pct(r["accuracy_pruned_structured"] if r["structured"] else None),
              _pct(r["accuracy_float"]), _num(r["score"]), _mark(r)] for r in base]
    return f"{title}\n\n{md_table(header, lines)}"


def _unstructured_section(rows: Sequence[Mapping]) -> str:
    float_rows = _float_rows(rows)
    if not float_rows:
        return "## Unstructured pruning (fp32)\n\nNeeds fp32 in quantize.types."
    header = ["unstructured", "model", "nonzero params", "sparsity",
              "accuracy right after pruning", "accuracy after fine-tune", "score", "Pareto"]
    tables = []
    for structured in dict.fromkeys(r["structured"] for r in float_rows):
        lines = [[_cell(r["unstructured"]), r["model"], r["nonzero_params"],
                  _num(r["sparsity"]),
                  _pct(r["accuracy_pruned_unstructured"] if r["unstructured"] else None),
                  _pct(r["accuracy_float"]), _num(r["score"]), _mark(r)]
                 for r in float_rows if r["structured"] == structured]
        tables.append(f"## Unstructured pruning of {model_name(structured)} (fp32)\n\n"
                      + md_table(header, lines))
    return "\n\n".join(tables)


def _quantized_section(rows: Sequence[Mapping]) -> str:
    header = ["model", "quant", "accuracy", "95% interval", "computed in", "float accuracy", "score",
              "score (study formula)", "latency b1 (ms/image, median [q1-q3])",
              "latency b32 (ms/image, median [q1-q3])", "size (KiB)", "Pareto"]
    lines = [[r["model"], r["quant"], _pct(r["accuracy"]), _interval(r),
              (r["precision"] or "—") + (f" ({r['runtime']})" if r.get("runtime") else ""),
              _pct(r["accuracy_float"]), _num(r["score"]), _num(r["score_seed"]),
              _latency(r, 1), _latency(r, 32),
              _num(None if r["size_bytes"] is None else r["size_bytes"] / 1024), _mark(r)]
             for r in rows]
    flagged = any(latency_under_load(r) for r in rows)
    note = ("Latency: CPU, `latency_threads` threads, median and quartiles over "
            "`evaluate.latency_repeats` timed runs, on the runtime in brackets (int8: its ONNX file "
            "on `quantize.int8.engine`). fp16 on a CPU runs in fp32 (its weights rounded), so "
            "its latency is fp32's." + (
                " Low-bit types (wXaY, wmix<b>) are simulated: fake quantization in fp32, as no CPU kernel "
                "here runs them, so they have no latency and no file size (—); their score counts "
                "each layer at its own bits." if any(r.get("kernel") == "simulated" for r in rows)
                else "") + (
                f" ⚠ marks a spread (q3 - q1) over {LATENCY_SPREAD_FLAG:.0%} of the median: "
                "measured while the machine was busy; compare such figures with care."
                if flagged else ""))
    low = [r for r in rows if r.get("bits")]
    bits = ("\n\n## Low-bit models: bits per layer\n\nConv and linear layers per (weight, "
            "activation) bit width; each layer's own bits are in its metrics file "
            "(`layer_bits`).\n\n" + md_table(["model", "layers"], [[r["model"], r["bits"]]
                                                                   for r in low])) if low else ""
    return f"## After quantization (every model)\n\n{note}\n\n{md_table(header, lines)}{bits}"


def _spread_wide(row: Mapping, batch: int) -> bool:
    median, q1, q3 = (row.get(f"latency_ms_b{batch}{k}") for k in ("", "_q1", "_q3"))
    return bool(median) and q1 is not None and q3 is not None and \
        (q3 - q1) > LATENCY_SPREAD_FLAG * median


def latency_under_load(row: Mapping) -> bool:
    """A latency whose quartiles spread wide: the machine was busy while it was timed."""
    return _spread_wide(row, 1) or _spread_wide(row, 32)


def _latency(row: Mapping, batch: int) -> str:
    median, q1, q3 = (row.get(f"latency_ms_b{batch}{k}") for k in ("", "_q1", "_q3"))
    if median is None:
        return "—"
    if q1 is None or q3 is None:
        return _num(median)
    return f"{_num(median)} [{_num(q1)}-{_num(q3)}]{' ⚠' if _spread_wide(row, batch) else ''}"


def _budget_section(summary: Mapping) -> str:
    tables = []
    for budgets, key, what in (("budgets", "score", "score"),
                               ("budgets_seed", "score_seed", "score (study formula)")):
        lines = [[budget.split("<=")[1], best["model"] or "none fits", _pct(best["accuracy"]),
                  _interval(best), _num(best[key])] for budget, best in summary[budgets].items()]
        tables.append(f"## Best accuracy within a {what} budget\n\n"
                      + md_table([f"{what} budget", "model", "accuracy", "95% interval", what],
                                 lines))
    return "\n\n".join(tables)


def _interval(row: Mapping) -> str:
    if row.get("accuracy_low") is None:
        return "—"
    return f"{_pct(row['accuracy_low'])}-{_pct(row['accuracy_high'])}"


def _sensitivity_section(rows: Sequence[Mapping]) -> str:
    """Accuracy drop of each filter group pruned alone (Li et al.'s sensitivity), one row per
    group, one column per amount."""
    if not rows:
        return "## Sensitivity\n\nNo sensitivity measurements."
    amounts = sorted({r["amount"] for r in rows})
    base = rows[0]["accuracy"] + rows[0]["drop"]
    lines = []
    for group in dict.fromkeys(r["group"] for r in rows):
        found = {r["amount"]: r for r in rows if r["group"] == group}
        first = next(iter(found.values()))
        lines.append([group, first["convs"].replace(" ", ", "), first["channels"],
                      *(_pct(-found[a]["drop"]) if a in found else "" for a in amounts)])
    return ("## Sensitivity\n\nEach filter group of the baseline pruned alone, no fine-tune: "
            f"change in accuracy (pp) from {_pct(base)} on held-out training images "
            "(prune.structured.spare_drop spares the groups that lose more).\n\n"
            + md_table(["group", "convs", "channels", *(f"{a:g}" for a in amounts)], lines))
