"""report: the params grid's metric files -> Pareto front, budgets, CSV, tables, figures, and the
`dvc plots` definitions that read them. Every input is synthetic, written under tmp_path."""
from __future__ import annotations

import csv
import json
import runpy
import sys
from pathlib import Path

import pytest
import yaml

from report_inputs import (LOG_HEADER, QUICK, QUICK_GRID, ROOT, dvc_yaml, fake_model,  # noqa: F401
                           fake_structured, fake_unstructured, output_paths, point, quick_inputs,
                           quick_report, write_inputs, write_json_file)
from squeeze import names
from squeeze.config import ConfigError, Grid, dotted_set, grid as params_grid
from squeeze.report import figures, tradeoff


def test_sensitivity_table_and_figure(quick_report, tmp_path):
    assert quick_report.sensitivity[1] == {
        "group": "conv1", "convs": "conv1 layer1.0.conv2 layer1.1.conv2", "channels": 8,
        "amount": 0.9, "accuracy": 0.11, "drop": 0.7}
    text = tradeoff.markdown(quick_report, quick_report.summary())
    assert "| conv1 | conv1, layer1.0.conv2, layer1.1.conv2 | 8 | -40.00 | -70.00 |" in text
    assert "| layer1.0.conv1 | layer1.0.conv1 | 8 | -1.00 | -21.00 |" in text
    assert "from 81.00 on held-out training images" in text


def params_with_grid(structured, unstructured, types) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in (("prune.structured.amounts", structured),
                       ("prune.unstructured.amounts", unstructured), ("quantize.types", types)):
        dotted_set(params, key, value)
    return params


# ---- Pareto front and budgets ------------------------------------------------------------------

def test_pareto_on_a_hand_made_example_with_ties():
    points = [
        point("a", 0.90, 1.0),   # front
        point("a-twin", 0.90, 1.0),  # the same point: neither beats the other, both stay
        point("same-accuracy-dearer", 0.90, 2.0),  # a: equal accuracy, lower score
        point("best", 0.95, 2.0),  # front: most accurate
        point("same-score-worse", 0.93, 2.0),  # best: equal score, higher accuracy
        point("cheapest", 0.80, 0.5),  # front: lowest score
        point("dominated", 0.85, 2.5),  # best beats it on both
    ]
    assert tradeoff.pareto_flags(points) == [True, True, False, True, False, True, False]


def test_an_equal_point_does_not_dominate():
    a = point("a", 0.9, 1.0)
    assert not tradeoff.dominates(a, dict(a))
    assert tradeoff.dominates(a, point("b", 0.9, 1.1))
    assert tradeoff.dominates(a, point("b", 0.89, 1.0))
    assert not tradeoff.dominates(a, point("b", 0.91, 1.1))


def test_accuracy_interval_is_wilsons():
    # 0.9 on 10,000 images: about +-0.59 pp; 50 of 100: 40.38-59.62%, the textbook Wilson values
    low, high = tradeoff.accuracy_interval(0.9, 10_000)
    assert (low, high) == (0.893966, 0.905727)  # by hand: centre 0.899846, half 0.005881
    assert tradeoff.accuracy_interval(0.5, 100) == (0.403832, 0.596168)
    assert tradeoff.accuracy_interval(1.0, 64)[1] == 1.0 and tradeoff.accuracy_interval(0.0, 64)[0] == 0.0


def test_best_under_budget_counts_the_boundary_and_breaks_ties_by_score():
    rows = [point("big", 0.93, 4.0), point("edge", 0.90, 1.0), point("tie-dear", 0.88, 0.5),
            point("tie-cheap", 0.88, 0.4), point("tiny", 0.70, 0.3)]
    assert tradeoff.best_under_budget(rows, 2.0)["model"] == "edge"
    assert tradeoff.best_under_budget(rows, 1.0) == {"model": "edge", "accuracy": 0.90, "score": 1.0,
                                                   "accuracy_low": None, "accuracy_high": None}
    assert tradeoff.best_under_budget(rows, 0.5)["model"] == "tie-cheap"
    assert tradeoff.best_under_budget(rows, 0.25) == {"model": None, "accuracy": None, "score": None,
                                                    "accuracy_low": None, "accuracy_high": None}


def test_budgets_on_the_study_formula_use_score_seed():
    rows = [{**point("wide", 0.90, 0.30), "score_seed": 3.0},
            {**point("pruned", 0.85, 0.05), "score_seed": 0.9}]
    assert tradeoff.best_under_budget(rows, 2.0)["model"] == "wide"  # by measured score
    assert tradeoff.best_under_budget(rows, 2.0, "score_seed") == {
        "model": "pruned", "accuracy": 0.85, "score_seed": 0.9, "accuracy_low": None,
        "accuracy_high": None}
    assert tradeoff.best_under_budget(rows, 0.5, "score_seed") == {
        "model": None, "accuracy": None, "score_seed": None, "accuracy_low": None,
        "accuracy_high": None}
    summary = tradeoff.summarize(tradeoff.with_pareto(
        [{**r, "structured": 0, "unstructured": 0, "quant": "fp32"} for r in rows]))
    assert list(summary["budgets_seed"]) == ["score_seed<=2.0", "score_seed<=1.0",
                                             "score_seed<=0.5", "score_seed<=0.25"]


def test_summary_has_baseline_budgets_front_and_count(quick_report):
    summary = quick_report.summary()
    assert summary["models"] == 12
    assert summary["baseline"] == {"model": "s0-u0-fp32", "accuracy": 0.93, "score": 3.98778}
    assert list(summary["budgets"]) == ["score<=2.0", "score<=1.0", "score<=0.5", "score<=0.25"]
    assert summary["budgets"]["score<=2.0"]["model"] == "s0-u0-fp16"      # 0.93 at 1.99
    assert summary["budgets"]["score<=1.0"]["model"] == "s0-u0-int8"      # 0.926 at 0.997
    # s0.5-u0-int8 has the same score and less accuracy
    assert summary["budgets"]["score<=0.5"]["model"] == "s0-u0.5-int8"    # 0.916 at 0.498
    assert summary["budgets"]["score<=0.25"]["model"] == "s0.5-u0.5-int8"  # 0.891 at 0.249
    assert summary["pareto"] == ["s0.5-u0.5-int8", "s0-u0.5-int8", "s0-u0-int8", "s0-u0-fp16"]
    assert summary["pareto_count"] == 4


def test_summary_without_baseline_in_the_grid(tmp_path):
    grid = Grid((0.5,), (0, 0.5), ("int8",))
    summary = tradeoff.load(grid, write_inputs(tmp_path, grid)).summary()
    assert summary["baseline"] is None and summary["models"] == 2


# ---- reading the grid's files ------------------------------------------------------------------

def test_files_are_named_as_dvc_interpolates_the_params_values(tmp_path):
    grid = params_grid(params_with_grid([0, 0.5], [0.0, 0.25], ["int8"]))
    assert [p.relative_to(tmp_path).as_posix() for p in tradeoff.metric_files(grid, tmp_path)] == [
        "structured/s0.json", "structured/s0.5.json",
        "unstructured/s0-u0.0.json", "unstructured/s0-u0.25.json",
        "unstructured/s0.5-u0.0.json", "unstructured/s0.5-u0.25.json",
        "models/s0-u0.0-int8.json", "models/s0-u0.25-int8.json", "models/s0.5-u0.0-int8.json",
        "models/s0.5-u0.25-int8.json"]
    runs = {run["run"]: path.name for run, path in tradeoff.log_files(grid, tmp_path)}
    assert runs == {"baseline": "baseline.csv", "s0": "s0.csv", "s0.5": "s0.5.csv",
                    "s0-u0": "s0-u0.0.csv", "s0-u0.25": "s0-u0.25.csv",
                    "s0.5-u0": "s0.5-u0.0.csv", "s0.5-u0.25": "s0.5-u0.25.csv"}


def test_a_bad_grid_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="prune.unstructured.amounts"):
        params_grid(params_with_grid([0], [1.5], ["fp32"]))


@pytest.mark.parametrize("missing", ["models/s0.5-u0-int8.json", "unstructured/s0.5-u0.json",
                                     "structured/s0.5.json", "train/s0-u0.5.csv"])
def test_a_missing_stage_file_is_an_error_naming_it(quick_inputs, missing):
    (quick_inputs / missing).unlink()
    with pytest.raises(tradeoff.MissingInputError) as info:
        tradeoff.load(QUICK_GRID, quick_inputs)
    message = str(info.value)
    assert message.startswith(f"{quick_inputs / missing} is missing") and "\n" not in message
    (quick_inputs / "train/baseline.csv").unlink()
    with pytest.raises(tradeoff.MissingInputError, match=r"\(and 1 more\)"):
        tradeoff.load(QUICK_GRID, quick_inputs)


def test_rows_join_each_stage_s_own_metrics(quick_report):
    """The report joins on (structured, unstructured, quant); no value is renamed on the way
    except by the join's column names, and none is carried inside a checkpoint."""
    row = next(r for r in quick_report.rows if r["model"] == "s0.5-u0.5-int8")
    assert row["accuracy"] == fake_model(0.5, 0.5, "int8")["accuracy"]
    assert row["accuracy_float"] == fake_unstructured(0.5, 0.5)["accuracy"]
    assert row["accuracy_pruned_unstructured"] == 0.5
    assert row["accuracy_pruned_structured"] == 0.4
    assert (row["device"], row["precision"]) == ("cpu", "int8")


def test_files_outside_the_grid_do_not_leak_in(quick_inputs):
    write_json_file(quick_inputs / "models" / "s0.3-u0-fp32.json",
                    {**fake_model(0.3, 0, "fp32"), "accuracy": 0.99, "score": 0.01})
    write_json_file(quick_inputs / "structured" / "s0.3.json", fake_structured(0.3))
    (quick_inputs / "train" / "s0.3.csv").write_text(LOG_HEADER + "1,1.0,0.5,0.5,0.01,1.0,100.0\n")
    result = tradeoff.load(QUICK_GRID, quick_inputs)
    assert len(result.rows) == 12
    assert not any(r["structured"] == 0.3 for r in result.rows + result.curves)


def test_curves_hold_every_epoch_of_the_baseline_and_each_fine_tune(quick_report):
    runs = {}
    for row in quick_report.curves:
        runs[row["run"]] = runs.get(row["run"], 0) + 1
    # amount-0 steps trained nothing: their logs are header-only
    assert runs == {"baseline": 3, "s0.5": 2, "s0-u0.5": 2, "s0.5-u0.5": 2}


# ---- written outputs ---------------------------------------------------------------------------


def test_write_outputs(quick_report, tmp_path):
    paths = output_paths(tmp_path / "reports")
    summary = tradeoff.write_outputs(quick_report, **paths)
    with open(paths["csv_path"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    assert list(rows[0]) == list(tradeoff.CSV_COLUMNS)
    assert {"model", "structured", "unstructured", "quant", "accuracy", "accuracy_float",
            "accuracy_pruned_structured", "accuracy_pruned_unstructured", "score", "score_seed",
            "params", "nonzero_params", "ops", "latency_ms_b1", "latency_ms_b32", "size_bytes",
            "device", "precision", "pareto"} <= set(rows[0])
    assert rows[-1]["model"] == "s0.5-u0.5-int8" and rows[0]["structured"] == "0"
    assert {r["model"] for r in rows if r["pareto"] == "true"} == set(summary["pareto"])
    assert {r["pareto"] for r in rows} == {"true", "false"}
    assert json.loads(paths["summary_path"].read_text()) == summary
    with open(paths["curves_path"], newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(quick_report.curves)


def test_markdown_tables(quick_report):
    text = tradeoff.markdown(quick_report, quick_report.summary())
    for heading in ("## Structured pruning", "## Unstructured pruning of s0 ",
                    "## Unstructured pruning of s0.5 ", "## After quantization",
                    "## Best accuracy within a score budget",
                    "## Best accuracy within a score (study formula) budget"):
        assert heading in text
    quantized = text.split("## After quantization")[1].split("##")[0]
    assert quantized.count("✓") == quick_report.summary()["pareto_count"]
    assert "| 0.5 | s0.5-u0-fp32 | 5586981 | 40.00 | 90.50 |" in text  # before/after fine-tune


def test_low_bit_rows_are_marked_simulated_without_latency_size_or_study_score(tmp_path):
    """A grid with a low-bit type and a per-layer-bits budget: their rows say `simulated`, show
    no latency or size, stay out of the study-formula budgets (score_seed blank), and their QAT
    logs join the curves."""
    grid = Grid((0, 0.5), (0, 0.5), ("fp32", "int8"), ("w4a4",), (0.5,))
    report = tradeoff.load(grid, write_inputs(tmp_path, grid))
    low = [r for r in report.rows if r["quant"] in ("w4a4", "wmix0.5")]
    assert len(low) == 8 and {r["kernel"] for r in low} == {"simulated"}
    assert {r["kernel"] for r in report.rows if r not in low} == {"real"}
    summary = report.summary()
    assert not any(best["model"] and best["model"].startswith("w", best["model"].rfind("-") + 1)
                   for best in summary["budgets_seed"].values())
    text = tradeoff.markdown(report, summary)
    for model in ("s0.5-u0.5-w4a4", "s0.5-u0.5-wmix0.5"):
        line = next(l for l in text.splitlines() if l.startswith(f"| {model} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[7] == "—" and cells[8:11] == ["—", "—", "—"]  # study score, latency, size
    assert "Low-bit types (wXaY, wmix<b>) are simulated" in text
    assert "| s0.5-u0.5-w4a4 | w8a8 x2, w4a4 x3 |" in text  # the bits per layer section
    assert {c["run"] for c in report.curves if c["stage"] == "qat"} == {
        f"s{s:g}-u{u:g}-{q}" for s in (0, 0.5) for u in (0, 0.5) for q in ("w4a4", "wmix0.5")}
    figures.write_figures(report, tmp_path / "figures")  # blank latencies and study scores draw


# ---- the stage script --------------------------------------------------------------------------

def quick_params() -> dict:
    """params.yaml with the quick profile's overrides applied, as `dvc exp run -S` leaves it."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in QUICK.items():
        dotted_set(params, key, value)
    return params


def run_stage(tmp_path, metrics: Path, monkeypatch) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(quick_params()))
    prepared = tmp_path / "prepare.json"
    prepared.write_text(json.dumps({"train_images": 5000, "test_images": 1000}))
    out = tmp_path / "reports"
    monkeypatch.setattr(sys, "argv", [
        "report.py", "--params", str(params), "--metrics", str(metrics),
        "--prepared", str(prepared), "--profiles", str(ROOT / "profiles"),
        "--out-csv", str(out / "tradeoff.csv"), "--out-summary", str(out / "summary.json"),
        "--out-metrics", str(out / "metrics.json"), "--out-tables", str(out / "tradeoff.md"), "--out-curves", str(out / "curves.csv"),
        "--out-figures", str(out / "figures")])
    runpy.run_path(str(ROOT / "stages" / "report.py"), run_name="__main__")
    return out


def test_stage_writes_the_report(quick_inputs, tmp_path, monkeypatch):
    out = run_stage(tmp_path, quick_inputs, monkeypatch)
    assert json.loads((out / "summary.json").read_text())["models"] == 12
    headline = json.loads((out / "metrics.json").read_text())
    assert headline["models"] == 12
    # numbers only (None where no model fits a budget): model names would widen every table
    assert all(v is None or isinstance(v, (int, float)) for v in headline.values())
    assert headline["acc_at_4x"] == 0.926 and headline["acc_at_64x"] is None
    tables = (out / "tradeoff.md").read_text()
    assert tables.startswith("# Trade-off report\n\n## Run\n\n| setting | value |")
    run = tables.split("## Run")[1].split("##")[0]
    assert "| profile | `quick` (profiles/quick.yaml) |" in run
    assert "| images | synthetic images: 5,000 train / 1,000 test images |" in run
    assert "| network | ResNet-18, width 8 (11,173,962 parameters) |" in run  # fake_model's count
    assert "| model | width 8, num_classes 10, arch resnet18_cifar |" in run  # every setting, section by section
    assert "| prune.unstructured | amounts [0, 0.5], scope global |" in run
    assert "| latency measured on | test, 2 threads |" in run
    assert "| accuracy computed on | cpu (test) |" in run
    pngs = sorted(p.name for p in (out / "figures").iterdir())
    assert pngs == sorted(f"{name}.png" for name in figures.FIGURES)
    assert all((out / "figures" / n).read_bytes()[:4] == b"\x89PNG" for n in pngs)
    # write_log: 3 baseline epochs and 3 fine-tunes of 2 epochs, 30 s and 100 images/s each
    assert "baseline 1.5 min (3 epochs, median 100 images/s); 3 fine-tunes 3.0 min in all" in run


def test_stage_fails_in_one_line_naming_the_missing_file(quick_inputs, tmp_path, monkeypatch,
                                                         capsys):
    (tmp_path / "reports" / "figures").mkdir(parents=True)  # a previous run's outputs
    (tmp_path / "reports" / "tradeoff.csv").write_text("stale\n")
    (quick_inputs / "models" / "s0-u0.5-fp16.json").unlink()
    with pytest.raises(SystemExit) as info:
        run_stage(tmp_path, quick_inputs, monkeypatch)
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "s0-u0.5-fp16.json is missing" in err and "\n" not in err
    assert not (tmp_path / "reports" / "tradeoff.csv").exists()


# ---- dvc.yaml and `dvc plots` ------------------------------------------------------------------


def test_dvc_yaml_declares_the_report_stage_metrics_and_plots():
    pipeline = dvc_yaml()
    stage = pipeline["stages"]["report"]
    # the grid, and every section the "Run" table of tradeoff.md describes
    assert set(stage["params"]) == {"data", "model", "train", "finetune", "prune", "quantize",
                                    "score", "evaluate", "sensitivity"}
    assert {"metrics", "profiles", "src/squeeze/report/provenance.py"} <= set(stage["deps"])
    # plain, cached outputs: DVC keeps no run-cache entry for a stage with a `cache: false` one,
    # and the run-cache is how another machine or a fresh clone restores the report
    outs = stage["outs"]
    assert all(isinstance(out, str) for out in outs), outs
    for out in outs:  # every declared output is an --out-* argument of the command
        assert f" {out}" in stage["cmd"]
    assert pipeline["metrics"] == ["reports/metrics.json"]  # the headline; summary.json has names
    for definition in pipeline["plots"]:
        (props,) = definition.values()
        assert (ROOT / props["template"]).is_file()


def test_rows_carry_their_interval_and_checkpoint(quick_inputs):
    rows = tradeoff.load(QUICK_GRID, quick_inputs, test_images=1000).rows
    for row in rows:
        p, n, z = row["accuracy"], 1000, 1.959964  # Wilson's interval, written out here
        centre, half = (p + z * z / (2 * n)), z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
        expected = ((centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n))
        assert row["accuracy_low"] == pytest.approx(expected[0], abs=1e-5)
        assert row["accuracy_high"] == pytest.approx(expected[1], abs=1e-5)
        assert row["accuracy_low"] < row["accuracy"] < row["accuracy_high"]
        assert row["checkpoint"] == f"models/quantized/{row['model']}.pt"
    assert tradeoff.load(QUICK_GRID, quick_inputs).rows[0]["accuracy_low"] is None


def test_headline_numbers_by_hand():
    """Budgets are fractions of the baseline's score; front_auc averages the best accuracy
    available over log-even budgets from 1/64 of the baseline's score to the baseline's."""
    def row(s, u, q, accuracy, score):
        return {"structured": s, "unstructured": u, "quant": q, "accuracy": accuracy,
                "score": score}
    rows = tradeoff.with_pareto([row(0, 0, "fp32", 0.9, 4.0), row(0.3, 0, "int8", 0.85, 1.0),
                               row(0.5, 0, "int8", 0.8, 0.25), row(0.7, 0, "int8", 0.5, 0.0625),
                               row(0, 0, "fp64?", 0.95, 8.0)])
    curves = [{"epoch_seconds": 30.0}, {"epoch_seconds": 90.0}]
    found = tradeoff.headline(tradeoff.Report(rows=rows, curves=curves, test_images=10_000))
    assert found["base_acc"] == 0.9 and found["base_score"] == 4.0 and found["models"] == 5
    assert (found["acc_at_4x"], found["acc_at_16x"], found["acc_at_64x"]) == (0.85, 0.8, 0.5)
    assert found["front_auc"] == pytest.approx((0.5 + 0.8 + 0.85) / 3, abs=1e-6)
    assert found["front"] == 5 and found["train_min"] == 2.0
    # Wilson half width at 90% on 10,000 images: about 0.59 points
    assert found["ci95"] == pytest.approx(0.0059, abs=0.0001)


def test_latency_spread_flags_a_busy_machine():
    calm = {"latency_ms_b1": 1.0, "latency_ms_b1_q1": 0.95, "latency_ms_b1_q3": 1.1,
            "latency_ms_b32": 0.5, "latency_ms_b32_q1": 0.49, "latency_ms_b32_q3": 0.52}
    busy = {**calm, "latency_ms_b32_q3": 0.9}
    assert not tradeoff.latency_under_load(calm) and tradeoff.latency_under_load(busy)


def test_a_model_name_is_read_back_by_the_module_that_writes_it():
    for point in [(0.5, 0.3, "int8"), (0.0, None, None), (0.7, 0.0, None), (0.1, 0.9, "fp16")]:
        assert names.parse(names.model_name(*point)) == point
    for bad in ["x", "s0.5-x", "s0.5-u0.3-int8-1", "", "u0.5"]:
        with pytest.raises(ValueError, match="not a model name"):
            names.parse(bad)


def test_the_report_carries_the_score_normalisers_its_models_used(tmp_path):
    """score.*_norm: the study's leave Report.score_norms None (the figures' axes say "score,
    measured" as before); others are carried to the axes and the CSV; models that disagree
    cannot share an axis: one line naming the rerun."""
    metrics = write_inputs(tmp_path / "study", QUICK_GRID)
    assert tradeoff.load(QUICK_GRID, metrics).score_norms is None
    metrics = write_inputs(tmp_path / "auto", QUICK_GRID)
    for path in (metrics / "models").glob("*.json"):
        found = json.loads(path.read_text())
        path.write_text(json.dumps({**found, "score_params_norm": 351_173.0,
                                    "score_ops_norm": 1.5e7}))
    report = tradeoff.load(QUICK_GRID, metrics)
    assert report.score_norms == (351_173.0, 1.5e7)
    assert {(r["score_params_norm"], r["score_ops_norm"]) for r in report.rows} == {
        (351_173.0, 1.5e7)}
    label = figures.figure_tradeoff_final(report).axes[0].get_xlabel()
    assert label == ("score, measured: nonzero params/351,173 + ops/15,000,000 (log; lower is "
                     "better)")
    one = next((metrics / "models").glob("*.json"))
    one.write_text(json.dumps({**json.loads(one.read_text()), "score_ops_norm": 2.8e8}))
    with pytest.raises(ConfigError, match="different normalisers") as info:
        tradeoff.load(QUICK_GRID, metrics)
    assert "\n" not in str(info.value)
