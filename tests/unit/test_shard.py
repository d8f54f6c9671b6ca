"""The plan of waves (in process; the launchers and the CLI run in tests/e2e/test_sharding_cli.py,
the sharded grid in tests/e2e/test_pipeline_e2e.py)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from shard_grid import PARAMS, REPO, grid_stages
from squeeze.sharding.shard import Stage, ShardError, WAVES, cost, plan


def test_every_stage_once_in_dependency_order_and_chains_stay_on_one_worker():
    stages = grid_stages()
    result = plan(stages, PARAMS, workers=3)
    placed = [(w["wave"], i, name) for w in result["waves"]
              for i, names in enumerate(w["workers"]) for name in names]
    assert sorted(name for _, _, name in placed) == sorted(s.name for s in stages)
    assert [w["name"] for w in result["waves"]] == list(WAVES)
    where = {name: (wave, worker) for wave, worker, name in placed}
    for s in stages:
        for need in s.needs:
            assert where[need][0] <= where[s.name][0]
            if where[need][0] == where[s.name][0]:  # same wave: same worker, earlier in its list
                assert where[need][1] == where[s.name][1]
    baseline = result["waves"][0]["workers"]
    assert baseline[0] == ["prepare", "train", "sensitivity"] and baseline[1:] == [[], []]
    assert result["waves"][4]["workers"][0] == ["report", "export"]


def test_costs_are_epochs_times_relative_ops_and_the_plan_balances_them():
    finetune = replace(PARAMS.finetune, structured=replace(PARAMS.finetune.structured, epochs=30),
                       unstructured=replace(PARAMS.finetune.unstructured, epochs=10))
    params = replace(PARAMS, finetune=finetune)
    assert cost(Stage("prune_structured@0.5"), params) == pytest.approx((30 + 0.05) * 0.25)
    assert cost(Stage("prune_structured@0"), params) == pytest.approx(0.05)  # nothing to tune
    assert cost(Stage("prune_unstructured@0.7-0.5"), params) == pytest.approx((10 + 0.05) * 0.09)
    assert cost(Stage("prune_unstructured@0.5-0"), params) == pytest.approx(0.05 * 0.25)
    assert cost(Stage("train"), params) == pytest.approx(PARAMS.train.epochs + 0.05)
    distilled = replace(params, finetune=replace(finetune, structured=replace(
        finetune.structured, distill_alpha=0.7)))
    assert cost(Stage("prune_structured@0.5"), distilled) == pytest.approx((30 * 1.96 + 0.05) * 0.25)

    stages = grid_stages(structured=(0, 0.1, 0.3, 0.5, 0.7), unstructured=(0, 0.1, 0.3, 0.5, 0.7))
    result = plan(stages, params, workers=4)
    unstructured = result["waves"][2]
    loads = unstructured["cost"]
    assert sum(loads) == pytest.approx(sum(c for n, c in result["costs"].items()
                                            if n.startswith("prune_unstructured")), abs=1e-2)
    # longest-first greedy: within the largest single stage of the perfect split
    biggest = max(c for n, c in result["costs"].items() if n.startswith("prune_unstructured"))
    assert max(loads) - sum(loads) / 4 <= biggest
    assert all(len(names) > 0 for names in unstructured["workers"])
    # the study's 25 unstructured stages (20 fine-tunes) over 4 GPUs: loads within 5%
    assert sorted(len(names) for names in unstructured["workers"]) == [6, 6, 6, 7]
    assert max(loads) / min(loads) < 1.05


def test_bad_plans_are_one_line_errors():
    with pytest.raises(ShardError, match="workers 0 is not a positive"):
        plan(grid_stages(), PARAMS, 0)
    with pytest.raises(ShardError, match="'distill@1' is of no known wave"):
        plan(grid_stages() + [Stage("distill@1")], PARAMS, 2)
    with pytest.raises(ShardError, match="depends on 'report' of the later wave report"):
        plan([Stage("prepare", ("report",)), Stage("report")], PARAMS, 2)


def test_ci_runs_the_tests_and_the_metrics_report_and_the_workflow_posts_it():
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci and "tools/ci_metrics.py" in ci
    assert "--out ci-out/summary.md" in ci
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    steps = workflow["jobs"]["ci"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert "bash .ci/run" in runs
    assert any("gh pr comment" in r and "--body-file ci-out/summary.md" in r for r in runs)
    assert workflow[True]["pull_request"] is None  # YAML reads the `on:` key as True
