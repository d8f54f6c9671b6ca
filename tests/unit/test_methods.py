"""Methods as experiments: the method profiles, the queue commands (validated before anything is
queued), the wait on the queue, and the table and figure built from the experiments' files.
In process: DVC's queue itself runs in tests/e2e/test_pipeline_e2e.py."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from squeeze import experiments, profiles
from squeeze.check import check
from squeeze.config import ConfigError, dotted_get, load_params
from squeeze.report import methods, tradeoff



def project() -> Path:
    return Path(__file__).resolve().parents[2]


def run_files(amounts=(0, 0.5), quantize: dict | None = None) -> dict[str, str]:
    """The files of one method run, as DVC would read them at the experiment's commit."""
    params = {"prune": {"structured": {"amounts": list(amounts)}}}
    files = {"params.yaml": yaml.safe_dump(params | ({"quantize": quantize} if quantize else {})),
             "metrics/prepare.json": json.dumps({"test_images": 1000})}
    for s in amounts:
        files[f"metrics/structured/s{s}.json"] = json.dumps(
            {"structured": s, "accuracy_pruned": 0.1 if s else 0.8,
             "accuracy_recalibrated": 0.55 if s else None, "accuracy": 0.8 - 0.1 * s,
             "epochs": 3 if s else 0, "train_seconds": 90.0 if s else 0.0, "device_name": "cpu"})
        files[f"metrics/models/s{s}-u0-fp32.json"] = json.dumps(
            {"accuracy": 0.8 - 0.1 * s, "score": 0.25 * (1 - s) ** 2, "params": 1000})
    return files


def test_rows_join_the_structured_and_model_files():
    rows = methods.rows_of("recal", run_files().__getitem__)
    assert [r["structured"] for r in rows] == [0, 0.5]
    assert rows[1] == {"method": "recal", "structured": 0.5, "quant": "fp32", "kernel": "real",
                       "accuracy_before_finetune": 0.1,
                       "accuracy_recalibrated": 0.55, "accuracy": 0.75, "score": 0.0625,
                       "params": 1000, "finetune_epochs": 3, "finetune_seconds": 90.0,
                       "seconds_per_epoch": 30.0, "quant_epochs": 0, "quant_seconds": None,
                       "test_images": 1000, "device_name": "cpu"}
    assert rows[0]["seconds_per_epoch"] is None


def test_a_run_with_more_types_gives_a_row_per_model_and_type_with_the_qat_cost():
    files = run_files(quantize={"types": ["fp32", "int8"], "qat_types": ["w4a4"],
                                "mix_budgets": [0.5]})
    for s in (0, 0.5):
        files[f"metrics/models/s{s}-u0-int8.json"] = json.dumps(
            {"accuracy": 0.79, "score": 0.01, "params": 1000, "kernel": "real"})
        for quant in ("w4a4", "wmix0.5"):
            files[f"metrics/models/s{s}-u0-{quant}.json"] = json.dumps(
                {"accuracy": 0.78, "score": 0.005, "params": 1000, "kernel": "simulated",
                 "epochs": 2, "train_seconds": 500.0})
    rows = methods.rows_of("lowbit", files.__getitem__)
    assert [(r["structured"], r["quant"], r["kernel"], r["quant_epochs"], r["quant_seconds"])
            for r in rows] == [
        (s, q, k, e, t) for s in (0, 0.5) for q, k, e, t in (
            ("fp32", "real", 0, None), ("int8", "real", 0, None),
            ("w4a4", "simulated", 2, 500.0), ("wmix0.5", "simulated", 2, 500.0))]
    assert {r["finetune_epochs"] for r in rows if r["structured"] == 0.5} == {3}
    table = methods.markdown(rows)
    assert "| lowbit | 0.5 | w4a4 (simulated) | 10.00 | 55.00 | 78.00 | 0.00500 | 3 | 30.0 | 2, 500 |" \
        in table
    assert "| lowbit | 0 | int8 | 80.00 | — | 79.00 | 0.01000 | 0 | None | — |" in table
    assert "| lowbit | 0 | fp32 |" not in table, "the unpruned fp32 model is not a method's row"


def test_a_csv_from_before_the_type_columns_reads_as_fp32_on_real_kernels(tmp_path):
    path = tmp_path / "methods.csv"
    path.write_text("method,structured,accuracy,score\nstudy,0.5,0.79,0.06\n")
    (row,) = methods.read_rows(path)
    assert (row["quant"], row["kernel"], row["quant_epochs"], row["test_images"]) == (
        "fp32", "real", "0", "10000")  # the cpu profile's whole test set


def test_csv_round_trip_and_markdown(tmp_path):
    path = tmp_path / "methods.csv"
    methods.write_rows(methods.rows_of("study", run_files().__getitem__), path)
    rows = methods.read_rows(path)
    assert list(rows[0]) == list(methods.COLUMNS)
    table = methods.markdown(rows)
    assert "| study | 0.5 | fp32 | 10.00 | 55.00 | 75.00 | 0.06250 | 3 | 30.0 | — |" in table
    assert "| study | 0 |" not in table, "the unpruned model is not a method's row"


def test_collected_methods_replace_their_own_rows_in_place_and_keep_the_others():
    old = [{"method": "study", "structured": "0"}, {"method": "recal", "structured": "0"},
           {"method": "recal", "structured": "0.5"}, {"method": "l2", "structured": "0"}]
    new = {"recal": [{"method": "recal", "structured": 0.7}], "fresh": [{"method": "fresh"}]}
    assert [(r["method"], r.get("structured")) for r in methods.merged(old, new)] == [
        ("study", "0"), ("recal", 0.7), ("l2", "0"), ("fresh", None)]


def test_budgets_take_the_study_models_scores_as_limits():
    rows = [{"method": "study", "structured": "0.5", "score": "0.06", "accuracy": "0.79"},
            {"method": "study", "structured": "0.7", "score": "0.02", "accuracy": "0.70"},
            {"method": "better", "structured": "0.5", "score": "0.05", "accuracy": "0.81"},
            {"method": "better", "structured": "0.3", "score": "0.12", "accuracy": "0.83",
             "finetune_epochs": "10"}]
    rows += [{"method": "lowbit", "structured": "0.3", "score": "0.015", "accuracy": "0.80",
              "quant": "w4a4", "kernel": "simulated", "finetune_epochs": "3"},
             {"method": "lowbit", "structured": "0.5", "score": "0.02", "accuracy": "0.78",
              "quant": "int8", "kernel": "real", "finetune_epochs": "3"},
             {"method": "study", "structured": "0.5", "score": "0.016", "accuracy": "0.78",
              "quant": "int8", "kernel": "real"}]  # not a limit: the limits are fp32 models'
    table = methods.budgets(rows)
    assert "| study | ? | 79.00 | 78.00 (s0.5 int8) |" in table
    assert "| better | 10 | 81.00 | — |" in table
    assert "| lowbit | 3 | 80.00 (s0.3 w4a4 (simulated)) | 80.00 (s0.3 w4a4 (simulated)) |" in table


# ---- the method profiles and the queue ------------------------------------------------------------

def test_every_method_profile_sets_only_known_params_and_validates_on_the_cpu_base():
    params = load_params(project() / "params.yaml")
    names = experiments.names(project() / "profiles")
    assert names[0] == "study" and len(names) == len(set(names)) >= 20
    for name in names:
        overrides = profiles.load(f"methods/{name}", project() / "profiles")
        for key in overrides:
            assert dotted_get(params, key, None) is not None, (name, key)
        assert experiments.summary(name, project() / "profiles")  # `methods list` says what it is
        check(project() / "params.yaml", experiments.stack(name, "cpu"),
              directory=project() / "profiles")


def test_the_csv_holds_the_methods_of_the_profiles():
    """reports/methods.csv and profiles/methods/ name the same methods."""
    listed = {r["method"] for r in methods.read_rows(project() / "reports" / "methods.csv")}
    assert listed == set(experiments.names(project() / "profiles"))


def test_a_profile_queued_or_run_elsewhere_gets_the_data_path_made_absolute(monkeypatch, tmp_path):
    """`profile quick --data ../x.tar.gz -- --queue` runs in .dvc/tmp/exps/<dir>, where the
    relative path names nothing: it is made absolute there, and kept as given in the workspace."""
    monkeypatch.chdir(project())
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(b"")
    relative = Path(os.path.relpath(archive, project()))
    sets = {extra: dict(a.split("=", 1) for a in profiles.exp_run_command(
        "quick", str(relative), list(extra))[3:] if "=" in a) for extra in ((), ("--queue",),
                                                                          ("--temp", "-n", "x"))}
    assert sets[()]["data.path"] == str(relative)
    assert sets[("--queue",)]["data.path"] == sets[("--temp", "-n", "x")]["data.path"] == str(archive)


def test_profiles_stack_in_order_a_later_one_winning(tmp_path):
    (tmp_path / "methods").mkdir()
    (tmp_path / "base.yaml").write_text("train.epochs: 12\nmodel.width: 16\n")
    (tmp_path / "methods" / "long.yaml").write_text("# Method long: more epochs.\ntrain.epochs: 30\n")
    assert profiles.stack(["base", "methods/long"], tmp_path) == {"train.epochs": 30,
                                                                 "model.width": 16}
    with pytest.raises(ConfigError, match=r"profile 'nope' not found .* known profiles: base, "
                                          r"methods/long"):
        profiles.stack(["base", "nope"], tmp_path)


def test_queue_commands_name_each_experiment_and_validate_every_method_first(monkeypatch, tmp_path):
    monkeypatch.chdir(project())
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(b"")
    commands = experiments.queue_commands(["study", "recal"], "quick", str(archive))
    assert [c[:6] for c in commands] == [["dvc", "exp", "run", "--queue", "-n", "methods-study"],
                                         ["dvc", "exp", "run", "--queue", "-n", "methods-recal"]]
    assert "-f" not in commands[0]  # `dvc exp run -f` would rerun every stage, baseline too
    sets = dict(a.split("=", 1) for a in commands[1][6:] if a != "-S")
    assert sets["prune.unstructured.amounts"] == "[0]" and sets["quantize.types"] == "[fp32]"
    assert sets["finetune.structured.recalibrate_batches"] == "50"
    assert sets["model.width"] == "8"  # the quick base under the grid and the method
    assert sets["data.path"] == str(archive.resolve())  # absolute: the queue runs elsewhere
    with pytest.raises(ConfigError, match="method 'nope' not found"):
        experiments.queue_commands(["recal", "nope"], "quick", None)
    with pytest.raises(ConfigError, match="profile 'gpu' not found"):
        experiments.queue_commands(["recal"], "gpu", None)


def test_a_bad_method_is_refused_before_any_experiment_is_queued(tmp_path):
    profiles_dir = tmp_path / "profiles"
    (profiles_dir / "methods").mkdir(parents=True)
    for name in ("quick", "structured-fp32"):
        (profiles_dir / f"{name}.yaml").write_text((project() / "profiles" / f"{name}.yaml").read_text())
    (profiles_dir / "methods" / "study.yaml").write_text("{}\n")
    (profiles_dir / "methods" / "bad.yaml").write_text("prune.structured.amounts: [0, 1.5]\n")
    with pytest.raises(ConfigError, match=r"prune\.structured\.amounts.*1\.5"):
        experiments.queue_commands(["study", "bad"], "quick", None, directory=profiles_dir,
                                   params=project() / "params.yaml")


def test_wait_polls_until_none_is_queued_or_running():
    states = iter([{"methods-a": "Queued", "methods-b": "Running"},
                   {"methods-a": "Running", "methods-b": "Success"},
                   {"methods-a": "Failed", "methods-b": "Success"}])
    said = []
    final = experiments.wait(["methods-a", "methods-b"], poll=0, say=said.append,
                             status=lambda: next(states))
    assert final == {"methods-a": "Failed", "methods-b": "Success"}
    assert said[-1] == "methods-a: Failed  methods-b: Success" and len(said) == 3


def method_rows(name: str, accuracies, epochs: int = 3) -> list[dict]:
    scores = (0.25, 0.06, 0.02)
    return [{"method": name, "structured": str(s), "accuracy": str(a), "score": str(score),
             "finetune_epochs": str(epochs if s else 0)}
            for s, a, score in zip((0, 0.5, 0.7), accuracies, scores)]


def test_methods_figure_draws_each_family_against_the_study_on_top():
    rows = (method_rows("study", (0.83, 0.79, 0.70)) + method_rows("recal", (0.83, 0.80, 0.71))
            + method_rows("l2", (0.83, 0.78, 0.69)) + method_rows("random", (0.83, 0.77, 0.66))
            + method_rows("mystery", (0.83, 0.75, 0.6))
            + method_rows("study_e10", (0.83, 0.81, 0.75), epochs=10))
    fig = methods.figure(rows)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [
        "fine-tune levers, one at a time", "which filters: ranking", "longer fine-tunes", "other"]
    for ax in panels:
        # each method is an error-bar container: its label, its data line, its bars
        lines = {c.get_label(): c.lines[0] for c in ax.containers}
        # the study's method in every panel, in black, drawn over the others
        study = lines.pop("study's method (3 epochs)")
        assert study.get_color() == "black"
        assert study.get_zorder() > max(line.get_zorder() for line in lines.values())
    assert {c.get_label() for c in panels[1].containers} == {"l2", "random",
                                                             "study's method (3 epochs)"}
    assert "study_e10 (10 epochs)" in {c.get_label() for c in panels[2].containers}
    assert {c.get_label() for c in panels[3].containers} == {"mystery",
                                                             "study's method (3 epochs)"}
    # every accuracy with its 95% interval (the cpu profile's 10,000 test images)
    (l2,) = [c for c in panels[1].containers if c.get_label() == "l2"]
    (bars,) = l2.lines[2]
    spans = sorted((round(min(seg[:, 1]), 6), round(max(seg[:, 1]), 6))
                   for seg in map(np.asarray, bars.get_segments()))
    assert spans == sorted(tradeoff.accuracy_interval(a, 10_000) for a in (0.83, 0.78, 0.69))


def test_methods_figure_draws_one_line_per_type_of_a_method_with_more_types():
    rows = method_rows("study", (0.83, 0.79, 0.70))
    for quant, kernel, shift in (("fp32", "real", 0), ("int8", "real", 0), ("w4a4", "simulated", -0.01)):
        rows += [r | {"method": "lowbit", "quant": quant, "kernel": kernel,
                      "accuracy": str(float(r["accuracy"]) + shift)}
                 for r in method_rows("lowbit", (0.83, 0.79, 0.70))]
    (panel,) = [ax for ax in methods.figure(rows).axes if ax.get_visible()]
    assert panel.get_title() == "fewer bits: one line per type (fp32 = the study's)"
    lines = {c.get_label(): c.lines[0] for c in panel.containers}
    assert set(lines) == {"lowbit fp32", "lowbit int8", "lowbit w4a4 (simulated)",
                          "study's method (3 epochs)"}
    assert list(lines["lowbit w4a4 (simulated)"].get_ydata()) == [0.69, 0.78, 0.82]


def test_each_methods_bar_is_the_interval_on_its_own_runs_test_set():
    """A quick-base method (1,000 test images) gets bars about 3x the cpu profile's."""
    rows = (method_rows("study", (0.83, 0.79, 0.70))
            + [r | {"test_images": "1000"} for r in method_rows("recal", (0.83, 0.80, 0.71))])
    fig = methods.figure(rows)
    (panel,) = [ax for ax in fig.axes if ax.get_visible()]
    spans = {}
    for c in panel.containers:
        (bars,) = c.lines[2]
        spans[c.get_label()] = sorted((round(min(seg[:, 1]), 6), round(max(seg[:, 1]), 6))
                                      for seg in map(np.asarray, bars.get_segments()))
    assert spans["recal"] == sorted(tradeoff.accuracy_interval(a, 1000) for a in (0.83, 0.80, 0.71))
    assert spans["study's method (3 epochs)"] == sorted(
        tradeoff.accuracy_interval(a, 10_000) for a in (0.83, 0.79, 0.70))
    assert "1,000 or 10,000 test images" in fig._supxlabel.get_text()
