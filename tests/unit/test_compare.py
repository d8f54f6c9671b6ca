"""`python -m squeeze compare` over DVC's `dvc exp show --json` shape (DVC 3): only the params
that differ between experiments, headline metrics in percent, ties named, at most 200 columns."""
from __future__ import annotations

import pytest

from squeeze.report.compare import CompareError, rows_of, table


def experiment(name: str, params: dict, metrics: dict | None) -> dict:
    data = {"params": {"params.yaml": {"data": params}},
            "metrics": {"reports/metrics.json": {"data": metrics}} if metrics else {}}
    return {"revs": [{"rev": "a" * 40, "name": name, "data": data}], "name": name}


STUDY = {"train": {"epochs": 200, "lr": 0.01}, "model": {"width": 64},
         "prune": {"structured": {"amounts": [0, 0.1, 0.3, 0.5, 0.7]}}}
QUICK = {"train": {"epochs": 4, "lr": 0.05}, "model": {"width": 8},
         "prune": {"structured": {"amounts": [0, 0.5]}}}
HEADLINE = {"models": 12, "base_acc": 0.353, "base_score": 0.064285, "ci95": 0.0296,
            "acc_at_4x": 0.386, "acc_at_16x": 0.325, "front_auc": 0.260062, "front": 3,
            "train_min": 2.17}


def shown(*experiments) -> list:
    return [{"rev": "workspace", "name": None, "data": {"params": {}, "metrics": {}}},
            {"rev": "b" * 40, "name": "main", "data": {"params": {"params.yaml": {"data": STUDY}},
                                                       "metrics": {}},
             "experiments": list(experiments)}]


def test_only_the_params_that_differ_between_experiments_not_with_head():
    wider = {**QUICK, "prune": {"structured": {"amounts": [0, 0.3, 0.5]}}}
    rows = rows_of(shown(experiment("a", QUICK, HEADLINE),
                         experiment("b", wider, {**HEADLINE, "acc_at_4x": 0.42}),
                         experiment("queued", QUICK, None)))
    assert [r["name"] for r in rows] == ["a", "b"]  # HEAD (never run) and the queued one left out
    text = table(rows)
    header, first, second, *notes = text.splitlines()
    assert header.split()[:2] == ["experiment", "prune.structured.amounts"]
    assert "train.epochs" not in header and "model.width" not in header
    assert first.split()[:4] == ["a", "[0,", "0.5]", "35.3"]
    assert second.split()[5] == "42.0"  # acc_at_4x in percent
    assert "—" in first  # acc_at_64x: no model fits that budget
    assert "±3.0 points" in notes[0]
    # 38.6 vs 42.0 is 3.4 points apart: not a tie; base_acc 35.3 == 35.3 is
    assert notes[1] == "ties across these experiments: base_acc, acc_at_16x"
    assert max(len(line) for line in text.splitlines()) <= 200


def test_names_select_experiments_and_unknown_names_are_one_line():
    rows = rows_of(shown(experiment("a", QUICK, HEADLINE), experiment("b", QUICK, HEADLINE)))
    assert table(rows, ["b"]).splitlines()[1].startswith("b ")
    with pytest.raises(CompareError, match="no experiment 'c' with results; known: a, b"):
        table(rows, ["c"])
    with pytest.raises(CompareError, match="no experiment with reports/metrics.json yet"):
        table(rows_of(shown()))


def test_long_values_are_cut_so_the_table_stays_narrow():
    long = {**QUICK, "data": {"path": "/very/long/path/" * 10}}
    rows = rows_of(shown(experiment("a", QUICK, HEADLINE), experiment("b", long, HEADLINE)))
    assert max(len(line) for line in table(rows).splitlines()) <= 200
