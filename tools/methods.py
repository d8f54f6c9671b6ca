"""Compare ways of filter pruning as DVC experiments on one profile -> reports/methods.csv.

    python tools/methods.py run --data ../shared/data/cifar10-jpeg.tar.gz [--only study,recal]
    python tools/methods.py draw        # reports/methods.png and the markdown table

`run` runs, one after another in this workspace, `dvc exp run -n methods-<name>` with the `cpu`
profile, the method's overrides, and a grid cut to the structured models (unstructured amount 0,
fp32 only); DVC reuses the cached baseline and every unchanged stage. After each experiment it
reads the structured stages' metrics files and the fp32 model files and rewrites that method's
rows of reports/methods.csv. `study` is params.yaml's method (the study's).
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from squeeze import profiles
from squeeze.report.figures import log_axis
from squeeze.config import load_params

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "methods.csv"
FIGURE = ROOT / "reports" / "methods.png"
GRID = {"prune.unstructured.amounts": [0], "quantize.types": ["fp32"]}
FT = "finetune.structured."
# distillation + cosine per iteration + recalibration: the base of the combined methods below
COMBINED = {FT + "schedule": "cosine_iter", FT + "recalibrate_batches": 50,
            FT + "distill_alpha": 0.7}
METHODS = {  # name -> overrides on top of the profile; in the order `run` takes them
    "study": {},
    "combined": COMBINED,
    "recal": {FT + "recalibrate_batches": 50},
    "cosine_iter": {FT + "schedule": "cosine_iter"},
    "distill": {FT + "distill_alpha": 0.7, FT + "distill_temperature": 4},
    "group_norm": {"prune.structured.criterion": "group_norm"},
    "block_internal": {"prune.structured.layers": "block-internal"},
    "rounds3": {"prune.structured.rounds": 3},
    # the study's cosine steps per epoch, so 1-epoch rounds never anneal: rounds that do
    "rounds3_iter": {"prune.structured.rounds": 3, FT + "schedule": "cosine_iter"},
    # Li et al.: spare the filter groups that lose more than 20 pp (on held-out training images)
    # when pruned alone at the stage's amount (the sensitivity stage)
    "spare": {"prune.structured.spare_drop": 0.2},
    "params_target": {"prune.structured.target": "params"},
    # one ranking across layers (L1 normalised per group), no group losing more than 0.9
    "global": {"prune.structured.scope": "global"},
    "l2": {"prune.structured.criterion": "l2"},
    "random": {"prune.structured.criterion": "random"},  # the control
    # what the levers above suggested together: Li et al.'s layers, pruned harder (0.8 / 0.9 land
    # under the study-method s0.5 / near its s0.7 score), distilled, cosine per iteration
    "internal_distill": {"prune.structured.layers": "block-internal",
             "prune.structured.amounts": [0, 0.5, 0.8, 0.9],
             FT + "schedule": "cosine_iter", FT + "distill_alpha": 0.7,
             FT + "distill_temperature": 4},
    # block-internal hard, residual-tied light (prune.structured.residual_scale), with the
    # combined levers; each grid's two amounts land just under the study-method s0.5 / s0.7 scores
    "tilt25": {**COMBINED, "prune.structured.residual_scale": 0.25,
               "prune.structured.amounts": [0, 0.7, 0.9]},
    "tilt60": {**COMBINED, "prune.structured.residual_scale": 0.6,
               "prune.structured.amounts": [0, 0.6, 0.85]},
    # the baseline's own peak rate (0.05) for the fine-tune instead of 0.01 (learning-rate
    # rewinding, Renda et al. 2020, in its simplest form), with the combined levers
    "combined_lr05": {**COMBINED, FT + "lr": 0.05},
    # a linear warm-up over the first of the 3 epochs (per iteration), with the combined levers
    "combined_warmup": {**COMBINED, FT + "warmup_epochs": 1},
    # equal fine-tune epochs, longer: does the combination's lead survive a 10-epoch budget, and
    # how far does the budget alone go? (s0.5 and s0.7 only: the two yardsticks)
    "study_e10": {FT + "epochs": 10, "prune.structured.amounts": [0, 0.5, 0.7]},
    # the study's method given the seconds combined_e10 took (distillation's teacher forward makes
    # its epochs 1.5x / 2.2x longer at s0.5 / s0.7): is the combination worth its cost?
    "study_e15": {FT + "epochs": 15, "prune.structured.amounts": [0, 0.5]},
    "study_e22": {FT + "epochs": 22, "prune.structured.amounts": [0, 0.7]},
    "combined_e10": {**COMBINED, FT + "epochs": 10, "prune.structured.amounts": [0, 0.5, 0.7]},
}
COLUMNS = ("method", "structured", "accuracy_before_finetune", "accuracy_recalibrated",
           "accuracy", "score", "params", "finetune_epochs", "finetune_seconds",
           "seconds_per_epoch", "device_name")


def rows_of(method: str, workspace: Path) -> list[dict]:
    params = load_params(workspace / "params.yaml")
    rows = []
    for amount in params["prune"]["structured"]["amounts"]:
        stage = json.loads((workspace / f"metrics/structured/s{amount}.json").read_text())
        model = json.loads((workspace / f"metrics/models/s{amount}-u0-fp32.json").read_text())
        epochs, seconds = stage["epochs"], stage["train_seconds"]
        rows.append({"method": method, "structured": amount,
                     "accuracy_before_finetune": stage["accuracy_pruned"],
                     "accuracy_recalibrated": stage.get("accuracy_recalibrated"),
                     "accuracy": model["accuracy"], "score": model["score"],
                     "params": model["params"], "finetune_epochs": epochs,
                     "finetune_seconds": seconds,
                     "seconds_per_epoch": round(seconds / epochs, 1) if epochs else None,
                     "device_name": stage["device_name"]})
    return rows


def read_rows(path: Path = OUT) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_rows(rows: list[dict], path: Path = OUT) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: ("" if r.get(c) is None else r[c]) for c in COLUMNS} for r in rows)


def run(names: list[str], data: str | None) -> None:
    for name in names:
        overrides = {**profiles.with_data(profiles.load("cpu", ROOT / "profiles"), data), **GRID,
                     **METHODS[name]}
        command = ["dvc", "exp", "run", "-n", f"methods-{name}", *profiles.set_args(overrides)]
        print(" ".join(profiles.shell_quote(c) for c in command), flush=True)
        # `dvc exp run -S` edits the workspace's params.yaml, which still holds the previous
        # experiment's values: start every method from the committed params.yaml
        subprocess.run(["git", "checkout", "HEAD", "--", "params.yaml"], cwd=ROOT, check=True)
        subprocess.run(command, cwd=ROOT, check=True)
        kept = [r for r in read_rows() if r["method"] != name]
        write_rows(kept + rows_of(name, ROOT))
        print(f"{name}: rows written to {OUT}", flush=True)


def number(text: str) -> float | None:
    return None if text in ("", None) else float(text)


def markdown(rows: list[dict]) -> str:
    lines = ["| method | structured | right after pruning | recalibrated | after fine-tune | "
             "score | epochs | s/epoch |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if number(r["structured"]) == 0:
            continue
        recal = number(r["accuracy_recalibrated"])
        lines.append(f"| {r['method']} | {r['structured']} | "
                     f"{100 * number(r['accuracy_before_finetune']):.2f} | "
                     f"{'—' if recal is None else f'{100 * recal:.2f}'} | "
                     f"{100 * number(r['accuracy']):.2f} | {number(r['score']):.5f} | "
                     f"{r['finetune_epochs']} | {r['seconds_per_epoch']} |")
    return "\n".join(lines)


def epochs_of(rows: list[dict], method: str) -> str:
    """A method's fine-tune epochs (those of its pruned models; the unpruned row has none)."""
    found = {str(r.get("finetune_epochs", "")) for r in rows
             if r["method"] == method and number(r["structured"]) != 0}
    return "/".join(sorted(found - {""})) or "?"


def budgets(rows: list[dict]) -> str:
    """Per method, the best accuracy at a score no higher than the study method's s0.5 and s0.7
    models (issue 11's yardsticks), as a markdown table."""
    study = {number(r["structured"]): number(r["score"]) for r in rows if r["method"] == "study"}
    marks = [(f"score <= study s{s:g} ({study[s]:.4f})", study[s]) for s in (0.5, 0.7) if s in study]
    lines = ["| method | fine-tune epochs | " + " | ".join(m for m, _ in marks) + " |",
             "|---|---|" + "---|" * len(marks)]
    for name in dict.fromkeys(r["method"] for r in rows):
        cells = []
        for _, limit in marks:
            fits = [number(r["accuracy"]) for r in rows
                    if r["method"] == name and number(r["score"]) <= limit]
            cells.append(f"{100 * max(fits):.2f}" if fits else "—")
        lines.append(f"| {name} | {epochs_of(rows, name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
}
TEST_IMAGES = 10_000  # the cpu profile measures every accuracy on CIFAR-10's whole test set


def families(names: list[str]) -> dict[str, list[str]]:
    """Panel title -> the methods of `names` it draws (the study's aside), in FAMILIES order."""
    panels = {title: [n for n in members if n in names] for title, members in FAMILIES.items()}
    known = {n for members in FAMILIES.values() for n in members} | {"study"}
    panels["other"] = [n for n in names if n not in known]
    return {title: members for title, members in panels.items() if members}


def _method_line(ax, rows: list[dict], name: str, label: str, **style) -> None:
    """One method's accuracy against score, each point with its 95% interval."""
    from squeeze.report.tradeoff import accuracy_interval

    group = sorted((r for r in rows if r["method"] == name), key=lambda r: number(r["score"]))
    xs = [number(r["score"]) for r in group]
    ys = [number(r["accuracy"]) for r in group]
    intervals = [accuracy_interval(y, TEST_IMAGES) for y in ys]
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
        for i, name in enumerate(members):
            epochs = epochs_of(rows, name)  # a longer fine-tune than the study's: dashed, labelled
            _method_line(ax, rows, name,
                         name if epochs == usual else f"{name} ({epochs} epochs)",
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
    fig.suptitle("Structured pruning methods against the study's (black): fp32, unstructured 0, "
                 f"cpu profile, {usual}-epoch fine-tunes unless labelled")
    fig.supxlabel(f"bars: 95% interval of each accuracy ({TEST_IMAGES:,} test images, Wilson); "
                  "one run per point, so the spread between seeds is not in the bars; lines "
                  "whose bars overlap are a tie. Every method and number: reports/methods.csv",
                  fontsize="small", color="0.3")
    return fig


def draw(rows: list[dict], path: Path = FIGURE) -> None:
    figure(rows).savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--data", help="an ImageFolder tree or .tar.gz (data.source: folder)")
    p.add_argument("--only", help="comma-separated method names (default: all, in order)")
    sub.add_parser("draw")
    args = parser.parse_args()
    if args.command == "run":
        names = args.only.split(",") if args.only else list(METHODS)
        unknown = [n for n in names if n not in METHODS]
        if unknown:
            sys.exit(f"error: unknown method {unknown[0]!r}; known: {', '.join(METHODS)}")
        run(names, args.data)
    else:
        rows = read_rows()
        draw(rows)
        print(markdown(rows))
        print()
        print(budgets(rows))


if __name__ == "__main__":
    main()
