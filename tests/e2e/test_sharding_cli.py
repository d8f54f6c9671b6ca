"""The shard command and its launchers as processes: `dvc stage list` against the planner, the
Slurm script run with a stand-in sbatch, every generated script through `bash -n`, and the CLI's
one-line errors."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shard_grid import PARAMS, REPO, grid_stages
from squeeze.sharding import launch
from squeeze.sharding.shard import plan, repo_plan


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
