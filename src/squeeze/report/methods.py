"""The methods comparison, built from the experiments themselves: for each experiment
`methods-<name>` (its newest run), its params and its structured stages' metrics are read at the
experiment's own commit through DVC (the outputs come from the local cache), never from a
workspace. A method's rows are its structured models at unstructured 0, one per quantization type
the run made (the methods grid: fp32 alone; `lowbit` adds int8 and w4a4). `reports/methods.csv` keeps the rows (the methods whose experiments are gone keep
theirs); the table and `reports/methods.png` are drawn from it.
"""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Callable, Iterable

import yaml

from ..config import MIXED_PREFIX
from ..experiments import PREFIX  # the experiment of method x is methods-x
from ..fsutil import atomic_path
from ..names import metrics_file
from .figures import log_axis
from .tradeoff import accuracy_interval

CSV = Path("reports/methods.csv")
FIGURE = Path("reports/methods.png")
COLUMNS = ("method", "structured", "quant", "kernel", "accuracy_before_finetune",
           "accuracy_recalibrated", "accuracy", "score", "params", "finetune_epochs",
           "finetune_seconds", "seconds_per_epoch", "quant_epochs", "quant_seconds",
           "test_images", "device_name")
TEST_IMAGES = 10_000  # the cpu profile's: every accuracy on CIFAR-10's whole test set
# a row without them (a csv from before they existed) is an fp32 model on real kernels,
# measured on the cpu profile's test set
DEFAULTS = {"quant": "fp32", "kernel": "real", "quant_epochs": "0",
            "test_images": str(TEST_IMAGES)}


# ---- reading experiments ------------------------------------------------------------------------

def experiment_revs(root: str | Path = ".") -> dict[str, str]:
    """Method name -> the commit of its newest `methods-<name>` experiment (any baseline)."""
    out = subprocess.run(["git", "for-each-ref", "--sort=-committerdate",
                          "--format=%(objectname) %(refname)", "refs/exps"], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        sha, ref = line.split(" ", 1)
        name = ref.rsplit("/", 1)[1]
        if name.startswith(PREFIX):
            found.setdefault(name[len(PREFIX):], sha)
    return found


def run_types(params: dict) -> list[str]:
    """The quantization types a run made, as its params.yaml spells them (fp32 when it has none)."""
    quantize = params.get("quantize") or {}
    return (list(quantize.get("types") or ["fp32"]) + list(quantize.get("qat_types") or [])
            + [f"{MIXED_PREFIX}{b}" for b in quantize.get("mix_budgets") or []])


def rows_of(method: str, read: Callable[[str], str]) -> list[dict]:
    """A method's rows from one run's files, `read(path)` giving a file's text at that run: each
    structured model (unstructured 0) at each type. `finetune_*` is the structured fine-tune's
    cost; `quant_*` the quantization-aware fine-tune's (0 epochs for post-training types)."""
    params = yaml.safe_load(read("params.yaml"))
    test_images = json.loads(read("metrics/prepare.json"))["test_images"]  # each interval's n
    rows = []
    for amount in params["prune"]["structured"]["amounts"]:
        stage = json.loads(read(metrics_file("metrics", amount).as_posix()))
        epochs, seconds = stage["epochs"], stage["train_seconds"]
        for quant in run_types(params):
            model = json.loads(read(metrics_file("metrics", amount, 0, quant).as_posix()))
            trained = model.get("kernel") == "simulated"  # a low-bit type: its own fine-tune
            rows.append({"method": method, "structured": amount, "quant": quant,
                         "kernel": model.get("kernel", "real"),
                         "accuracy_before_finetune": stage["accuracy_pruned"],
                         "accuracy_recalibrated": stage.get("accuracy_recalibrated"),
                         "accuracy": model["accuracy"], "score": model["score"],
                         "params": model["params"], "finetune_epochs": epochs,
                         "finetune_seconds": seconds,
                         "seconds_per_epoch": round(seconds / epochs, 1) if epochs else None,
                         "quant_epochs": model["epochs"] if trained else 0,
                         "quant_seconds": model["train_seconds"] if trained else None,
                         "test_images": test_images, "device_name": stage["device_name"]})
    return rows


def collect(root: str | Path = ".", only: Iterable[str] | None = None) -> dict[str, list[dict]]:
    """Method -> its rows, read from each method experiment's commit."""
    from dvc.api import DVCFileSystem

    revs = experiment_revs(root)
    wanted = list(revs) if only is None else [n for n in only if n in revs]
    out = {}
    for method in wanted:
        fs = DVCFileSystem(str(root), rev=revs[method])
        out[method] = rows_of(method, fs.read_text)
    return out


def merged(old: list[dict], new: dict[str, list[dict]]) -> list[dict]:
    """`old` rows with the methods in `new` replaced (in place, or appended when new)."""
    rows, done = [], set()
    for row in old:
        method = row["method"]
        if method in new:
            if method not in done:
                rows += new[method]
                done.add(method)
            continue
        rows.append(row)
    for method, fresh in new.items():
        if method not in done:
            rows += fresh
    return rows


def read_rows(path: Path = CSV) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row.update({k: v for k, v in DEFAULTS.items() if not row.get(k)})
    return rows


def write_rows(rows: list[dict], path: Path = CSV) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: ("" if r.get(c) is None else r[c]) for c in COLUMNS} for r in rows)


# ---- tables ---------------------------------------------------------------------------------------

def number(text) -> float | None:
    return None if text in ("", None) else float(text)


def quant_of(row: dict) -> str:
    """A row's type, `(simulated)` after one no kernel runs (fake quantization)."""
    quant = row.get("quant") or "fp32"
    return f"{quant} (simulated)" if row.get("kernel") == "simulated" else quant


def markdown(rows: list[dict]) -> str:
    lines = ["| method | structured | type | right after pruning | recalibrated | after fine-tune | "
             "score | epochs | s/epoch | QAT epochs, s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if number(r["structured"]) == 0 and quant_of(r) == "fp32":
            continue  # the unpruned baseline: no method made it
        recal = number(r["accuracy_recalibrated"])
        qat = (f"{r['quant_epochs']}, {number(r['quant_seconds']):.0f}"
               if number(r.get("quant_epochs")) else "—")
        lines.append(f"| {r['method']} | {r['structured']} | {quant_of(r)} | "
                     f"{100 * number(r['accuracy_before_finetune']):.2f} | "
                     f"{'—' if recal is None else f'{100 * recal:.2f}'} | "
                     f"{100 * number(r['accuracy']):.2f} | {number(r['score']):.5f} | "
                     f"{r['finetune_epochs']} | {r['seconds_per_epoch']} | {qat} |")
    return "\n".join(lines)


def epochs_of(rows: list[dict], method: str) -> str:
    """A method's fine-tune epochs (those of its pruned models; the unpruned row has none)."""
    found = {str(r.get("finetune_epochs", "")) for r in rows
             if r["method"] == method and number(r["structured"]) != 0}
    return "/".join(sorted(found - {""})) or "?"


def budgets(rows: list[dict]) -> str:
    """Per method, the best accuracy at a score no higher than the study method's s0.5 and s0.7
    models (fp32), as a markdown table; a cell whose best is another type names it."""
    study = {number(r["structured"]): number(r["score"]) for r in rows
             if r["method"] == "study" and quant_of(r) == "fp32"}
    marks = [(f"score <= study s{s:g} ({study[s]:.4f})", study[s]) for s in (0.5, 0.7) if s in study]
    lines = ["| method | fine-tune epochs | " + " | ".join(m for m, _ in marks) + " |",
             "|---|---|" + "---|" * len(marks)]
    for name in dict.fromkeys(r["method"] for r in rows):
        cells = []
        for _, limit in marks:
            fits = [r for r in rows if r["method"] == name and number(r["score"]) <= limit]
            best = max(fits, key=lambda r: number(r["accuracy"]), default=None)
            cells.append("—" if best is None else f"{100 * number(best['accuracy']):.2f}" + (
                "" if quant_of(best) == "fp32" else f" (s{best['structured']} {quant_of(best)})"))
        lines.append(f"| {name} | {epochs_of(rows, name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- the figure -----------------------------------------------------------------------------------

# The panels of reports/methods.png: each method family against the study's method. A method
# missing here gets the "other" panel; the full list stays in methods.csv and the table.
FAMILIES = {
    "fine-tune levers, one at a time": ("recal", "cosine_iter", "distill"),
    "fine-tune levers combined": ("combined", "combined_lr05", "combined_warmup"),
    "which filters: ranking": ("l2", "group_norm", "random", "global", "params_target"),
    "which layers lose filters": ("block_internal", "spare", "tilt25", "tilt60",
                                  "internal_distill"),
    "iterative pruning (3 rounds)": ("rounds3", "rounds3_iter"),
    "longer fine-tunes": ("study_e10", "study_e15", "study_e22", "combined_e10"),
    "fewer bits: one line per type (fp32 = the study's)": ("lowbit",),
}


def families(names: list[str]) -> dict[str, list[str]]:
    """Panel title -> the methods of `names` it draws (the study's aside), in FAMILIES order."""
    panels = {title: [n for n in members if n in names] for title, members in FAMILIES.items()}
    known = {n for members in FAMILIES.values() for n in members} | {"study"}
    panels["other"] = [n for n in names if n not in known]
    return {title: members for title, members in panels.items() if members}


def images_of(row: dict) -> int:
    """The test-set size a row's accuracy was measured on (its 95% interval's n)."""
    return int(number(row.get("test_images")) or TEST_IMAGES)


def types_of(rows: list[dict], method: str) -> list[str]:
    """A method's types (as `quant_of` spells them), in the order its rows hold them."""
    return list(dict.fromkeys(quant_of(r) for r in rows if r["method"] == method))


def _method_line(ax, rows: list[dict], name: str, label: str, quant: str = "fp32",
                 **style) -> None:
    """One method's accuracy against score at one type, each point with its 95% interval."""
    group = sorted((r for r in rows if r["method"] == name and quant_of(r) == quant),
                   key=lambda r: number(r["score"]))
    xs = [number(r["score"]) for r in group]
    ys = [number(r["accuracy"]) for r in group]
    intervals = [accuracy_interval(y, images_of(r)) for y, r in zip(ys, group)]
    ax.errorbar(xs, ys, yerr=[[y - low for y, (low, _) in zip(ys, intervals)],
                              [high - y for y, (_, high) in zip(ys, intervals)]],
                capsize=2.5, elinewidth=1, label=label, **style)


def figure(rows: list[dict]):
    """Small multiples: one panel per method family, each method in colour against the study's
    method drawn on top in black, every accuracy with its 95% interval."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(r["method"] for r in rows))
    panels = families(names)
    ncols = 3
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(5 * ncols, 4 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    usual = epochs_of(rows, "study")
    markers = "sD^vPX<>*"
    for ax, (title, members) in zip(axes, panels.items()):
        lines = [(name, quant) for name in members for quant in types_of(rows, name)]
        for i, (name, quant) in enumerate(lines):
            epochs = epochs_of(rows, name)  # a longer fine-tune than the study's: dashed, labelled
            several = len(types_of(rows, name)) > 1  # then every line names its type
            label = f"{name} {quant}" if several else name
            _method_line(ax, rows, name,
                         label if epochs == usual else f"{label} ({epochs} epochs)", quant,
                         color=f"C{i}", marker=markers[i % len(markers)], markersize=5,
                         linewidth=1.3, linestyle="-" if epochs == usual else "--")
        if "study" in names:
            _method_line(ax, rows, "study", f"study's method ({usual} epochs)", color="black",
                         marker="o", markersize=5, linewidth=2.2, zorder=5)
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    log_axis(axes[0])
    for ax in axes[(nrows - 1) * ncols:]:
        ax.set_xlabel("score, measured (log; lower is better)")
    for ax in axes[::ncols]:
        ax.set_ylabel("test accuracy after fine-tune")
    fig.suptitle("Structured pruning methods against the study's (black): unstructured 0, fp32 "
                 f"unless labelled, cpu profile, {usual}-epoch fine-tunes unless labelled")
    sizes = sorted({images_of(r) for r in rows})
    fig.supxlabel(f"bars: 95% interval of each accuracy "
                  f"({' or '.join(f'{n:,}' for n in sizes)} test images, Wilson); "
                  "one run per point, so the spread between seeds is not in the bars; lines "
                  "whose bars overlap are a tie. Every method and number: reports/methods.csv",
                  fontsize="small", color="0.3")
    return fig


def draw(rows: list[dict], path: Path = FIGURE) -> None:
    with atomic_path(path) as tmp:
        figure(rows).savefig(tmp, dpi=100, format="png")
