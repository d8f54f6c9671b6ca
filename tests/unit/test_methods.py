"""tools/methods.py: the rows it reads from a workspace's metrics files, and its table."""
from __future__ import annotations

import json

import methods
import yaml


def write_workspace(root, amounts=(0, 0.5)):
    (root / "metrics/structured").mkdir(parents=True)
    (root / "metrics/models").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump({"prune": {"structured": {"amounts":
                                                                               list(amounts)}}}))
    for s in amounts:
        (root / f"metrics/structured/s{s}.json").write_text(json.dumps(
            {"structured": s, "accuracy_pruned": 0.1 if s else 0.8,
             "accuracy_recalibrated": 0.55 if s else None, "accuracy": 0.8 - 0.1 * s,
             "epochs": 3 if s else 0, "train_seconds": 90.0 if s else 0.0, "device_name": "cpu"}))
        (root / f"metrics/models/s{s}-u0-fp32.json").write_text(json.dumps(
            {"accuracy": 0.8 - 0.1 * s, "score": 0.25 * (1 - s) ** 2, "params": 1000}))


def test_rows_join_the_structured_and_model_files(tmp_path):
    write_workspace(tmp_path)
    rows = methods.rows_of("recal", tmp_path)
    assert [r["structured"] for r in rows] == [0, 0.5]
    half = rows[1]
    assert half == {"method": "recal", "structured": 0.5, "accuracy_before_finetune": 0.1,
                    "accuracy_recalibrated": 0.55, "accuracy": 0.75, "score": 0.0625,
                    "params": 1000, "finetune_epochs": 3, "finetune_seconds": 90.0,
                    "seconds_per_epoch": 30.0, "device_name": "cpu"}
    assert rows[0]["seconds_per_epoch"] is None


def test_csv_round_trip_and_markdown(tmp_path):
    write_workspace(tmp_path)
    path = tmp_path / "methods.csv"
    methods.write_rows(methods.rows_of("study", tmp_path), path)
    rows = methods.read_rows(path)
    assert list(rows[0]) == list(methods.COLUMNS)
    table = methods.markdown(rows)
    assert "| study | 0.5 | 10.00 | 55.00 | 75.00 | 0.06250 | 3 | 30.0 |" in table
    assert "| study | 0 |" not in table, "the unpruned model is not a method's row"


def test_every_method_sets_only_known_params():
    from squeeze.config import dotted_get, load_params

    params = load_params(methods.ROOT / "params.yaml")
    for name, overrides in methods.METHODS.items():
        for key in overrides:
            assert dotted_get(params, key, None) is not None, (name, key)


def test_budgets_take_the_study_models_scores_as_limits():
    rows = [{"method": "study", "structured": "0.5", "score": "0.06", "accuracy": "0.79"},
            {"method": "study", "structured": "0.7", "score": "0.02", "accuracy": "0.70"},
            {"method": "better", "structured": "0.5", "score": "0.05", "accuracy": "0.81"},
            {"method": "better", "structured": "0.3", "score": "0.12", "accuracy": "0.83",
             "finetune_epochs": "10"}]
    table = methods.budgets(rows)
    assert "| study | ? | 79.00 | 70.00 |" in table
    assert "| better | 10 | 81.00 | — |" in table
