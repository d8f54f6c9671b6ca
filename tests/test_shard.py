"""The plan of waves and the launchers (no DVC run here; the simulation is in test_pipeline_e2e)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from squeeze import launch
from dataclasses import replace

from squeeze.config import load_params, validate
from squeeze.shard import Stage, ShardError, WAVES, cost, plan, repo_plan

REPO = Path(__file__).resolve().parents[1]
PARAMS = validate(load_params(REPO / "params.yaml"))


def grid_stages(structured=(0, 0.5), unstructured=(0, 0.5), quant=("fp32", "int8")):
    stages = [Stage("prepare"), Stage("train", ("prepare",)), Stage("sensitivity", ("train",))]
    for s in structured:
        stages.append(Stage(f"prune_structured@{s}", ("prepare", "sensitivity", "train")))
        for u in unstructured:
            stages.append(Stage(f"prune_unstructured@{s}-{u}", ("prepare", f"prune_structured@{s}")))
            stages += [Stage(f"quantize@{s}-{u}-{q}", ("prepare", f"prune_unstructured@{s}-{u}"))
                       for q in quant]
    quantized = tuple(s.name for s in stages if s.kind == "quantize")
    return stages + [Stage("report", quantized), Stage("export", ("report",))]


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


def test_bad_plans_are_one_line_errors():
    with pytest.raises(ShardError, match="workers 0 is not a positive"):
        plan(grid_stages(), PARAMS, 0)
    with pytest.raises(ShardError, match="'distill@1' is of no known wave"):
        plan(grid_stages() + [Stage("distill@1")], PARAMS, 2)
    with pytest.raises(ShardError, match="depends on 'report' of the later wave report"):
        plan([Stage("prepare", ("report",)), Stage("report")], PARAMS, 2)


def test_the_plan_of_this_repository_has_every_stage_of_dvc_stage_list():
    listed = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=REPO, check=True,
                            capture_output=True, text=True,
                            env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                                 "DVC_NO_ANALYTICS": "1", "HOME": str(Path.home())}).stdout.split()
    result = repo_plan(REPO, 4)
    placed = [n for w in result["waves"] for names in w["workers"] for n in names]
    params = yaml.safe_load((REPO / "params.yaml").read_text())  # the workspace's grid, whatever it is
    s, u = (len(params["prune"][k]["amounts"]) for k in ("structured", "unstructured"))
    expected = 4 + s + s * u + s * u * len(params["quantize"]["types"]) + 2  # + report, export
    assert sorted(placed) == sorted(listed) and len(placed) == len(set(placed)) == expected
    # the study's 25 unstructured stages (20 fine-tunes) over 4 GPUs, loads within 5%
    unstructured = result["waves"][2]
    assert sorted(len(names) for names in unstructured["workers"]) == [6, 6, 6, 7]
    assert max(unstructured["cost"]) / min(unstructured["cost"]) < 1.05


JOB = launch.Job(repo="https://example.com/team/squeeze.git", commit="0123abc", workers=3,
                 setup="source ~/venvs/squeeze/bin/activate")


def small_plan():
    return plan(grid_stages(), PARAMS, workers=3)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash to syntax-check with")
def test_slurm_script_is_valid_bash_chaining_one_array_per_wave(tmp_path):
    text = launch.slurm(JOB, small_plan(), partition="gpu")
    path = tmp_path / "submit.sh"
    path.write_text(text)
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert text.count("sbatch --parsable") == 5
    assert "--array=0 " in text  # the baseline wave: one worker
    assert "--array=0,1,2 " in text
    assert text.count("${previous:+--dependency=afterok:${previous%%;*}}") == 5
    assert "--gres=gpu:1" in text and "--partition=gpu" in text
    assert "--worker ${SLURM_ARRAY_TASK_ID} --wave 3" in text
    assert "git checkout --quiet 0123abc" in text and "source ~/venvs/squeeze/bin/activate" in text


def fake_sbatch_run(tmp_path, text: str) -> list[str]:
    """Run the script with a stand-in `sbatch` that records its arguments and stdin."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "calls"
    (bin_dir / "sbatch").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {record}\n'
        f'cat > {tmp_path}/task-$(wc -l < {record}).sh\n'
        'echo "$(( $(wc -l < ' + str(record) + ') + 100 ));cluster"\n')
    (bin_dir / "sbatch").chmod(0o755)
    script = tmp_path / "submit.sh"
    script.write_text(text)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    subprocess.run(["bash", str(script)], check=True, env=env, capture_output=True, text=True)
    return record.read_text().splitlines()


def test_slurm_waves_wait_for_the_previous_array(tmp_path):
    calls = fake_sbatch_run(tmp_path, launch.slurm(JOB, small_plan()))
    assert len(calls) == 5 and "--dependency" not in calls[0]
    for i, call in enumerate(calls[1:], start=1):  # job ids 101, 102, ... (";cluster" cut)
        assert f"--dependency=afterok:{100 + i} " in call + " "
    task = (tmp_path / "task-4.sh").read_text()  # the quantize wave's task script
    check = subprocess.run(["bash", "-n"], input=task, capture_output=True, text=True)
    assert check.returncode == 0 and "--wave 3" in task


def test_k8s_indexed_jobs_one_per_wave():
    docs = list(yaml.safe_load_all(launch.k8s(JOB, small_plan(), image="ghcr.io/team/squeeze:1",
                                               secret="dvc-remote")))
    assert [d["metadata"]["name"] for d in docs] == [f"squeeze-wave-{i}" for i in range(5)]
    for doc in docs:
        assert doc["apiVersion"] == "batch/v1" and doc["kind"] == "Job"
        spec = doc["spec"]
        assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
        container = spec["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container["envFrom"] == [{"secretRef": {"name": "dvc-remote"}}]
        script = container["command"][2]
        assert "--worker ${JOB_COMPLETION_INDEX}" in script
        assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert [d["spec"]["completions"] for d in docs] == [1, 2, 3, 3, 1]  # structured: 2 stages
    one = list(yaml.safe_load_all(launch.k8s(JOB, small_plan(), image="x", only=2)))
    assert [d["metadata"]["name"] for d in one] == ["squeeze-wave-2"]


@pytest.mark.parametrize("args, fragment", [
    (["plan", "--workers", "two"], "--workers 'two' is not a whole number"),
    (["plan", "--workers", "0"], "--workers 0 is not a positive whole number"),
    (["run", "--workers", "2", "--worker", "2", "--wave", "1"], "worker 2 is not one of 0..1"),
    (["run", "--workers", "2", "--worker", "0", "--wave", "7"], "wave 7 does not exist"),
    (["k8s", "--workers", "2", "--repo", "x"], "k8s needs --image"),
    (["slurm", "--workers", "2", "--repo", "it's"], "repo \"it's\" is empty or holds a quote"),
])
def test_shard_errors_are_one_line(args, fragment):
    proc = subprocess.run([sys.executable, "-m", "squeeze", "shard", *args], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def test_ci_runs_the_tests_and_the_metrics_report_and_the_workflow_posts_it():
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci and "scripts/ci_metrics.py --out ci-out/summary.md" in ci
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    steps = workflow["jobs"]["ci"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert "bash .ci/run" in runs
    assert any("gh pr comment" in r and "--body-file ci-out/summary.md" in r for r in runs)
    assert workflow[True]["pull_request"] is None  # YAML reads the `on:` key as True
