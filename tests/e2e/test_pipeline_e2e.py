"""End to end: the quick profile through the real DVC pipeline, in a throwaway copy of the repo.

One session-scoped run (`quick_run`) is shared by every test here: the DVC contract is checked on
it (a second `dvc repro` runs nothing, code edits rerun exactly the stages that run that code, a
growing grid reruns only the new items and leaves the old checkpoints byte-identical, a bad value
stops the first stage that runs). Uses the real CIFAR-10 JPEG archive when it is at
../shared/data/cifar10-jpeg.tar.gz (or $SQUEEZE_CIFAR_ARCHIVE), synthetic data otherwise.
Takes a few minutes; deselect with `-m "not e2e"`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import time
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from benchlib import child_env, copy_sources
from squeeze.config import dotted_set

REPO = Path(__file__).resolve().parents[2]
ARCHIVE = Path(os.environ.get("SQUEEZE_CIFAR_ARCHIVE",
                              REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"))



def run(cmd: list[str], cwd: Path, env: dict, ok: bool = True) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    output = proc.stdout + proc.stderr
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-6000:]}"
    else:
        assert proc.returncode != 0, f"{' '.join(cmd)} did not fail:\n{output[-3000:]}"
    return output


def environment() -> dict:
    return child_env(SQUEEZE_DEVICE="cpu")


def fresh_clone(root: Path, env: dict) -> Path:
    """The working tree's files (no outputs, no dvc.lock) as a new git repository."""
    copy_sources(REPO, root)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.name", "squeeze-e2e"],
                ["git", "config", "user.email", "e2e@squeeze.invalid"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "e2e"]):
        run(cmd, root, env)
    return root


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    env = environment()
    repo = fresh_clone(tmp_path_factory.mktemp("squeeze-e2e"), env)
    profile = [sys.executable, "-m", "squeeze", "profile", "quick"]
    if ARCHIVE.is_file():
        profile += ["--data", str(ARCHIVE)]
    log = run(profile, repo, env)
    remote = os.environ.get("SQUEEZE_E2E_REMOTE")
    if remote:  # CI: the metrics report that follows restores these stages instead of rerunning
        run(["dvc", "remote", "add", "--local", "-d", "e2e", remote], repo, env)
        run(["dvc", "push", "-q", "--run-cache"], repo, env)
    return repo, env, log


def grid(repo: Path):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    return (params["prune"]["structured"]["amounts"], params["prune"]["unstructured"]["amounts"],
            params["quantize"]["types"])


def metrics(repo: Path, rel: str) -> dict:
    return json.loads((repo / "metrics" / rel).read_text())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def changed_stages(repo: Path, env: dict) -> set[str]:
    """The stages `dvc status` lists as changed."""
    out = run(["dvc", "status"], repo, env)
    return set(re.findall(r"^(\S+):\s*$", out, flags=re.M))


@contextmanager
def edited(path: Path, text: str = "\n# an edit\n"):
    original = path.read_bytes()
    path.write_bytes(original + text.encode())
    try:
        yield
    finally:
        path.write_bytes(original)


@contextmanager
def params_set(repo: Path, env: dict, *overrides: tuple[str, object]):
    """params.yaml with dotted-key overrides, restored (with dvc.lock and outputs) afterwards."""
    path = repo / "params.yaml"
    original = path.read_bytes()
    lock = (repo / "dvc.lock").read_bytes()
    params = yaml.safe_load(original)
    for key, value in overrides:
        dotted_set(params, key, value)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        yield
    finally:
        path.write_bytes(original)
        (repo / "dvc.lock").write_bytes(lock)
        run(["dvc", "checkout", "-q"], repo, env)


# ---- the run's results -------------------------------------------------------------------------

def test_every_model_of_the_grid_is_measured(quick_run):
    repo, _, _ = quick_run
    structured, unstructured, types = grid(repo)
    for s in structured:
        assert metrics(repo, f"structured/s{s}.json")["structured"] == s
        for u in unstructured:
            assert metrics(repo, f"unstructured/s{s}-u{u}.json")["unstructured"] == u
            for q in types:
                model = metrics(repo, f"models/s{s}-u{u}-{q}.json")
                assert model["quant"] == q and model["structured"] == s
                assert model["score"] > 0 and model["latency_ms_b32"] > 0
                assert model["device"] == "cpu" and model["precision"]
    summary = json.loads((repo / "reports/summary.json").read_text())
    assert summary["models"] == len(structured) * len(unstructured) * len(types)


def test_accuracy_is_well_above_chance(quick_run):
    repo, _, _ = quick_run
    baseline = metrics(repo, "models/s0-u0-fp32.json")
    chance = 0.1
    # real data, width 8, 4 epochs on 5,000 images reaches ~0.35-0.45; synthetic ~1.0
    assert baseline["accuracy"] >= (3 * chance if ARCHIVE.is_file() else 0.8), baseline
    int8 = metrics(repo, "models/s0-u0-int8.json")
    assert abs(int8["accuracy"] - baseline["accuracy"]) < 0.05, (int8, baseline)


def test_one_model_measured_anywhere_gives_one_number(quick_run):
    """The same float model, measured by the stage that trained it, the stages downstream and
    the per-epoch log, on one device with one function: the same accuracy, to the digit."""
    repo, _, _ = quick_run
    structured, unstructured, _ = grid(repo)
    baseline = metrics(repo, "baseline.json")["accuracy"]
    log = (repo / "metrics/train/baseline.csv").read_text().splitlines()
    assert float(log[-1].split(",")[3]) == baseline
    assert metrics(repo, "structured/s0.json")["accuracy"] == baseline
    for s in structured:
        finetuned = metrics(repo, f"structured/s{s}.json")["accuracy"]
        assert metrics(repo, f"unstructured/s{s}-u0.json")["accuracy"] == finetuned
        for u in unstructured:
            float_accuracy = metrics(repo, f"unstructured/s{s}-u{u}.json")["accuracy"]
            assert metrics(repo, f"models/s{s}-u{u}-fp32.json")["accuracy"] == float_accuracy


def test_pruning_lowers_the_score(quick_run):
    repo, _, _ = quick_run
    base = metrics(repo, "models/s0-u0-fp32.json")
    pruned = metrics(repo, "models/s0.5-u0.5-fp32.json")
    assert pruned["params"] < 0.3 * base["params"]
    assert pruned["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert pruned["score"] < 0.35 * base["score"]


def test_checkpoints_carry_no_metrics(quick_run):
    repo, _, _ = quick_run
    import torch

    for rel in ("models/baseline.pt", "models/structured/s0.5.pt",
                "models/unstructured/s0.5-u0.5.pt", "models/quantized/s0.5-u0.5-int8.pt"):
        payload = torch.load(repo / rel, map_location="cpu", weights_only=True)
        assert "metrics" not in payload, rel


# ---- the DVC contract ----------------------------------------------------------------------------

def test_second_repro_runs_nothing(quick_run):
    repo, env, _ = quick_run
    log = run(["dvc", "repro"], repo, env)
    assert "Running stage" not in log, log[-3000:]
    assert changed_stages(repo, env) == set()


def test_code_edits_rerun_exactly_the_stages_that_run_that_code(quick_run):
    repo, env, _ = quick_run
    """`dvc status` lists the stages whose own deps changed (the report follows once their
    outputs change): editing the augmentation lists train and every stage after it that runs it."""
    all_stages = set(run(["dvc", "stage", "list", "--name-only"], repo, env).split())
    # export runs no training code: it loads checkpoints and reads the report
    training = {s for s in all_stages if s not in ("check_params", "prepare", "report", "export")}
    quantize = {s for s in all_stages if s.startswith("quantize@")}
    cases = {"src/squeeze/batches.py": training,   # the augmentation: training and downstream
             "src/squeeze/evaluation.py": training,
             "src/squeeze/steps/quantized.py": quantize,
             "src/squeeze/report/figures.py": {"report"},  # report code never reruns training
             "src/squeeze/data.py": {"prepare"}}  # sources: its unchanged output stops it there
    for path, expected in cases.items():
        with edited(repo / path):
            assert changed_stages(repo, env) == expected, path
    assert changed_stages(repo, env) == set()


def test_a_bad_value_in_a_cached_pipeline_stops_the_first_stage_that_runs(quick_run):
    repo, env, _ = quick_run
    with params_set(repo, env, ("quantize.int8.calibration_batches", 0)):
        out = run(["dvc", "repro"], repo, env, ok=False)
        assert "error: params.yaml: quantize.int8.calibration_batches = 0 is not allowed" in out
        assert len(re.findall(r"Running stage", out)) == 1, out[-3000:]
    assert changed_stages(repo, env) == set()


def test_a_growing_grid_reruns_only_new_items(quick_run):
    """structured amounts [0, 0.5] -> [0, 0.3, 0.5]: s0.3 runs, s0.5 is not rerun and its
    checkpoint is byte-identical (nothing in it depends on the grid)."""
    repo, env, _ = quick_run
    checkpoint = repo / "models/structured/s0.5.pt"
    before = sha(checkpoint)
    with params_set(repo, env, ("prune.structured.amounts", [0, 0.3, 0.5])):
        out = run(["dvc", "repro", "prune_structured"], repo, env)
        assert "Running stage 'prune_structured@0.3'" in out, out[-3000:]
        assert not re.search(r"Running stage 'prune_structured@(0|0\.5)'", out), out[-3000:]
        assert sha(checkpoint) == before
        pending = changed_stages(repo, env)
        assert not [s for s in pending if re.match(r"(prune_unstructured|quantize)@0\.5-", s)]
        assert "prune_unstructured@0.3-0.5" in pending and "train" not in pending
    # the grid shrinks back: files of s0.3 left in metrics/ (the report's folder dependency)
    # would rerun the report, as after any grid that shrinks
    for rel in ("metrics/structured/s0.3.json", "metrics/train/s0.3.csv"):
        (repo / rel).unlink(missing_ok=True)
    assert changed_stages(repo, env) == set()


def test_low_bit_types_run_as_qat_stages_beside_the_cached_grid(quick_run):
    """quantize.qat_types [w4a4] and mix_budgets [0.5]: only the qat and qat_mixed stages and
    what reads their files would run (the cached grid is reused: a dry run lists them); one qat
    stage, run for real with a 1-epoch QAT,
    writes a simulated model with no latency or size and a score under its int8 twin's. (The
    report's handling of such rows: test_report; the step itself: test_lowbit.)"""
    repo, env, _ = quick_run
    structured, unstructured, _ = grid(repo)
    with params_set(repo, env, ("quantize.qat_types", ["w4a4"]), ("finetune.qat.epochs", 1),
                    ("quantize.mix_budgets", [0.5])):
        dry = run(["dvc", "repro", "--dry"], repo, env)
        would = set(re.findall(r"Running stage '([^']+)'", dry))
        expected = {f"qat@{s}-{u}-w4a4" for s in structured for u in unstructured}
        mixed = {f"qat_mixed@{s}-{u}-0.5" for s in structured for u in unstructured}
        # export follows the report's CSV, which a dry run does not change: listed or not
        assert would - {"export"} == expected | mixed | {"report", "check_params"}, dry[-3000:]
        s, u = structured[-1], unstructured[-1]
        out = run(["dvc", "repro", "--single-item", f"qat@{s}-{u}-w4a4"], repo, env)
        assert set(re.findall(r"Running stage '([^']+)'", out)) == {f"qat@{s}-{u}-w4a4"}, out
        low = metrics(repo, f"models/s{s}-u{u}-w4a4.json")
        int8 = metrics(repo, f"models/s{s}-u{u}-int8.json")
        assert low["kernel"] == "simulated" and int8["kernel"] == "real"
        assert low["latency_ms_b32"] is None and low["size_bytes"] is None
        assert low["score"] < int8["score"] and low["sparsity"] == int8["sparsity"]
        assert low["epochs"] == 1 and (repo / f"models/quantized/s{s}-u{u}-w4a4.pt").is_file()
    for rel in (f"metrics/models/s{s}-u{u}-w4a4.json", f"metrics/train/s{s}-u{u}-w4a4.csv"):
        (repo / rel).unlink(missing_ok=True)  # the report's folder dependency
    (repo / f"models/quantized/s{s}-u{u}-w4a4.pt").unlink(missing_ok=True)
    assert changed_stages(repo, env) == set()


def test_auto_score_normalisers_rescore_the_cached_grid(quick_run):
    """score.params_norm/ops_norm auto: only the stages that compute or read a score would run
    (the baseline, pruning and fine-tunes are reused); the baseline's own fp32 model then scores
    4.0, divided by half its own nonzero parameters and ops."""
    repo, env, _ = quick_run
    structured, unstructured, types = grid(repo)
    before = metrics(repo, "models/s0-u0-fp32.json")
    with params_set(repo, env, ("score.params_norm", "auto"), ("score.ops_norm", "auto")):
        dry = run(["dvc", "repro", "--dry"], repo, env)
        would = set(re.findall(r"Running stage '([^']+)'", dry))
        expected = {f"quantize@{s}-{u}-{q}" for s in structured for u in unstructured
                    for q in types}
        assert would - {"export"} == expected | {"report", "check_params"}, dry[-3000:]
        run(["dvc", "repro", "--single-item", "quantize@0-0-fp32"], repo, env)
        found = metrics(repo, "models/s0-u0-fp32.json")
        assert found["score"] == 4.0 != before["score"]
        assert (found["score_params_norm"], found["score_ops_norm"]) == (
            found["nonzero_params"] / 2, found["ops"] / 2)
        assert found["accuracy"] == before["accuracy"]
    assert metrics(repo, "models/s0-u0-fp32.json") == before
    assert changed_stages(repo, env) == set()


def test_a_bad_value_on_a_fresh_clone_fails_in_the_first_stage(tmp_path):
    """A bad grid value is reported by the first stage, check_params, before any data is read or
    any model trained."""
    env = environment()
    repo = fresh_clone(tmp_path / "clone", env)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prune"]["structured"]["amounts"] = [0, 0.1, 1.2]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo, env, ok=False)
    assert re.findall(r"Running stage '([^']+)'", out) == ["check_params"], out[-3000:]
    assert ("error: params.yaml: prune.structured.amounts contains 1.2; each amount must be a "
            "number in [0, 1)") in out
    assert not (repo / "data").exists() and not (repo / "metrics").exists()


# ---- using the result: recommend, export, squeeze.load (issue 13) ---------------------------------

def squeeze_cli(repo: Path, env: dict, *args: str, ok: bool = True) -> str:
    return run([sys.executable, "-m", "squeeze", *args], repo, env, ok=ok)


def report_rows(repo: Path) -> list[dict]:
    import csv

    with open(repo / "reports" / "tradeoff.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_recommend_picks_the_best_model_under_the_budget_with_its_ties(quick_run):
    repo, env, _ = quick_run
    rows = report_rows(repo)
    budget = sorted(float(r["score"]) for r in rows)[len(rows) // 2]  # half the models fit
    answer = json.loads(squeeze_cli(repo, env, "recommend", "--budget", str(budget)))
    fitting = [r for r in rows if float(r["score"]) <= budget]
    best = max(fitting, key=lambda r: (float(r["accuracy"]), -float(r["score"])))
    assert answer["model"] == best["model"] and answer["accuracy"] == float(best["accuracy"])
    assert answer["score"] <= budget and (repo / answer["checkpoint"]).is_file()
    low, high = answer["accuracy_interval_95"]
    assert low < answer["accuracy"] < high
    # ties: every other model under the budget inside the interval, and no other
    assert {t["model"] for t in answer["ties"]} == {
        r["model"] for r in fitting if r["model"] != best["model"] and float(r["accuracy"]) >= low}
    seed = json.loads(squeeze_cli(repo, env, "recommend", "--budget", "100", "--score",
                                  "score_seed"))
    assert "score_seed" in seed and seed["accuracy"] == max(float(r["accuracy"]) for r in rows)


@pytest.mark.parametrize("args, fragment", [
    (["--budget", "0.000001"], "no model has score <= 1e-06; the cheapest is"),
    (["--budget", "1", "--score", "flops"], "unknown score 'flops'; allowed: score, score_seed"),
    (["--budget", "-1"], "budget -1.0 is not allowed; expected a number > 0"),
    (["--budget", "1", "--report", "nowhere.csv"], "nowhere.csv: report not found"),
], ids=["nothing-fits", "unknown-score", "negative", "no-report"])
def test_recommend_errors_are_one_line(quick_run, args, fragment):
    repo, env, _ = quick_run
    proc = subprocess.run([sys.executable, "-m", "squeeze", "recommend", *args], cwd=repo,
                          env=env, text=True, capture_output=True)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and fragment in proc.stderr
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize("quant, fmt", [("fp32", "onnx"), ("fp16", "onnx"), ("int8", "onnx"),
                                        ("fp32", "torchscript")])
def test_export_round_trips_and_checks_itself(quick_run, tmp_path, quant, fmt):
    repo, env, _ = quick_run
    checkpoint = repo / f"models/quantized/s0.5-u0.5-{quant}.pt"
    out = tmp_path / f"model.{fmt}"
    printed = squeeze_cli(repo, env, "export", str(checkpoint), "--format", fmt,
                          "--out", str(out), "--images", "200")
    # stdout's JSON first; TorchScript's own deprecation notices follow on stderr (not hidden)
    result = json.JSONDecoder().raw_decode(printed)[0]
    if fmt == "torchscript":
        assert "`torch.jit.trace` is deprecated" in printed
    assert result["images"] == 200 and result["quant"] == quant and out.is_file()
    assert result["size_bytes"] == out.stat().st_size
    if quant == "int8":  # the file the quantize stage measured, checked against its float model
        import torch

        assert out.read_bytes() == torch.load(checkpoint, weights_only=True)["onnx"]
        assert result["reference"] == "float model" and result["runtime"].startswith("onnxruntime ")
        assert abs(result["accuracy"] - result["reference_accuracy"]) <= result["interval95"]
        assert 0.5 <= result["top1_agreement"] <= 1
    else:
        assert result["top1_agreement"] >= 0.99
        assert result["max_abs_diff"] < (0.05 if quant == "fp16" else 1e-3)


def test_export_of_int8_to_torchscript_says_which_formats_it_supports(quick_run, tmp_path):
    repo, env, _ = quick_run
    out = tmp_path / "int8.pt"
    proc = subprocess.run([sys.executable, "-m", "squeeze", "export",
                           "models/quantized/s0.5-u0.5-int8.pt", "--format", "torchscript",
                           "--out", str(out)], cwd=repo, env=env, text=True, capture_output=True)
    assert proc.returncode == 1 and not out.exists()
    assert proc.stderr.strip().endswith("an int8 model exports to onnx only, not torchscript")


def test_squeeze_load_gives_a_ready_model_for_every_kind(quick_run):
    repo, env, _ = quick_run
    code = """
import json, sys, numpy as np, torch, squeeze
from squeeze.prepared import load_prepared
from squeeze.evaluation import BATCH_SIZE
ds, mean, std = load_prepared('data/prepared/dataset.npz')
out = {}
for path in sys.argv[1:]:
    model = squeeze.load(path)
    assert not model.training
    with torch.no_grad():
        predicted = torch.cat([model(squeeze.preprocess(ds.x_test[i:i + BATCH_SIZE], model)).argmax(1)
                               for i in range(0, len(ds.y_test), BATCH_SIZE)])
    out[path] = {"accuracy": round(float((predicted.numpy() == ds.y_test).mean()), 6),
                 "classes": squeeze.classes(model), "mean": [round(float(v), 6) for v in mean]}
print(json.dumps(out))
"""
    paths = ["models/baseline.pt", "models/structured/s0.5.pt"] + [
        f"models/quantized/s0.5-u0.5-{q}.pt" for q in ("fp32", "fp16", "int8")]
    found = json.loads(run([sys.executable, "-c", code, *paths], repo, env).strip().splitlines()[-1])
    # the same number the pipeline measured, through the public API and the stored normalisation
    assert found["models/baseline.pt"]["accuracy"] == metrics(repo, "baseline.json")["accuracy"]
    assert found["models/structured/s0.5.pt"]["accuracy"] == metrics(
        repo, "structured/s0.5.json")["accuracy"]
    for q in ("fp32", "fp16", "int8"):
        assert found[f"models/quantized/s0.5-u0.5-{q}.pt"]["accuracy"] == metrics(
            repo, f"models/s0.5-u0.5-{q}.json")["accuracy"], q
    prepared = metrics(repo, "prepare.json")
    for entry in found.values():
        assert entry["classes"] == prepared["classes"]
        assert entry["mean"] == pytest.approx(prepared["mean"], abs=5e-5)  # prepare.json: 4 digits


def test_the_export_stage_exports_the_recommended_model(quick_run):
    repo, env, _ = quick_run
    record = json.loads((repo / "models/export/model.json").read_text())
    budget = yaml.safe_load((repo / "params.yaml").read_text())["export"]["budget"]
    answer = json.loads(squeeze_cli(repo, env, "recommend", "--budget", str(budget)))
    assert {k: record[k] for k in answer} == answer and record["budget"] == budget
    check = record["export"]
    assert check["images"] == 256
    if record["model"].endswith("int8"):
        assert abs(check["accuracy"] - check["reference_accuracy"]) <= check["interval95"]
    else:
        assert check["top1_agreement"] >= 0.99
    suffix = "model.onnx"
    assert check["out"].endswith(suffix) and (repo / "models/export" / suffix).is_file()
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    assert dvc_yaml["artifacts"]["recommended"]["path"] == "models/export"
    assert dvc_yaml["artifacts"]["recommended"]["type"] == "model"


# ---- the grid over two workers (python -m squeeze shard) ----------------------------------------

@pytest.fixture(scope="session")
def sharded(quick_run, tmp_path_factory):
    """The quick profile split over 2 workers in separate clones sharing one local remote (waves
    in order, workers of a wave at the same time), then a fresh clone that pulls and repros."""
    sys.path.insert(0, str(REPO / "tools"))
    from shard_sim import simulate

    root = tmp_path_factory.mktemp("shard")
    return root, simulate(root, workers=2, profile="quick",
                          data=str(ARCHIVE) if ARCHIVE.is_file() else None)


@pytest.mark.slow  # a second whole quick grid, over two workers: as long as quick_run
def test_sharded_grid_runs_every_stage_once_and_a_fresh_clone_recomputes_nothing(quick_run, sharded):
    repo, env, _ = quick_run
    root, result = sharded
    ran = [r["stage"] for log in result["logs"] for r in log["ran"] if r["ran"]]
    listed = run(["dvc", "stage", "list", "--name-only"], repo, env).split()
    assert sorted(ran) == sorted(listed)  # each stage computed once, by one worker
    assert any(log["restored"] for log in result["logs"])  # later waves restore, not recompute
    assert result["fresh_recomputed"] == [] and result["fresh_cached"] == len(listed)
    fresh = json.loads((root / "fresh" / "reports" / "summary.json").read_text())
    single = json.loads((repo / "reports" / "summary.json").read_text())
    assert fresh == single


@pytest.mark.slow
def test_a_worker_rerun_picks_up_its_finished_stages_from_the_remote(sharded, quick_run):
    _, env, _ = quick_run
    root, _ = sharded
    again = root / "again"
    run(["git", "clone", "-q", str(root / "origin"), str(again)], root, env)
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(root / "remote")], again, env)
    out = subprocess.run([sys.executable, "-m", "squeeze", "shard", "run", "--workers", "2",
                          "--worker", "1", "--wave", "3"], cwd=again, env=env, text=True,
                         capture_output=True)
    assert out.returncode == 0, out.stderr[-3000:]
    log = json.loads(out.stdout)
    assert log["ran"] and not any(r["ran"] for r in log["ran"])
    assert {r["stage"] for r in log["restored"]} >= {"prepare", "train"}


def test_a_wave_before_its_inputs_exist_names_the_wave_to_run_first(quick_run, tmp_path):
    _, env, _ = quick_run
    clone = fresh_clone(tmp_path / "early", env)
    (tmp_path / "empty-remote").mkdir()
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(tmp_path / "empty-remote")],
        clone, env)
    out = subprocess.run([sys.executable, "-m", "squeeze", "shard", "run", "--workers", "1",
                          "--worker", "0", "--wave", "1"], cwd=clone, env=env, text=True,
                         capture_output=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "error: stage 'prepare' of wave 0 (baseline) is not in the remote's run-cache; run wave 0 "
        "first (python -m squeeze shard run --wave 0)")
    assert not (clone / "models").exists()  # nothing computed


# ---- what a user reads: a clean run, one screen of comparison, every documented command -------

def test_the_quick_run_prints_no_dvc_warning(quick_run):
    _, _, log = quick_run
    assert not [line for line in log.splitlines() if line.startswith("WARNING")], log[-3000:]


def experiment_names(repo: Path, env: dict) -> list[str]:
    out = run(["dvc", "exp", "list", "--name-only"], repo, env)
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_documented_commands_run_in_the_quick_workspace(quick_run):
    """A second experiment (one param changed) beside the quick profile's; the comparison and
    `dvc metrics show` fit 200 columns; then every command docs_commands marks RUN or FAILS, as
    the docs spell it (the archive's path, the experiments' names filled in). The workspace's
    params, lock, dvc.yaml and outputs are put back afterwards."""
    from docs_commands import FAILS, runnable

    repo, env, _ = quick_run
    run(["dvc", "exp", "run", "--temp", "-n", "budget-half", "-S", "export.budget=0.5"], repo, env)
    names = experiment_names(repo, env)
    assert "budget-half" in names and len(names) >= 2
    first, second = [n for n in names if n != "budget-half"][0], "budget-half"
    compared = run([sys.executable, "-m", "squeeze", "compare", first, second], repo, env)
    lines = compared.splitlines()
    assert lines[0].split()[:2] == ["experiment", "export.budget"], compared  # the one change
    assert max(map(len, lines)) <= 200, compared
    shown = run(["dvc", "metrics", "show"], repo, {**env, "COLUMNS": "1000"})
    assert max(map(len, shown.splitlines())) <= 200, shown
    wide = run(["dvc", "exp", "show", "--only-changed", "--no-pager"], repo,
               {**env, "COLUMNS": "5000"})
    print(f"dvc exp show --only-changed: {max(map(len, wide.splitlines()))} columns (HEAD row)")

    kept = {rel: (repo / rel).read_bytes() for rel in ("params.yaml", "dvc.lock", "dvc.yaml")}
    archive = str(ARCHIVE) if ARCHIVE.is_file() else None
    try:
        for command, how in runnable():
            if "../shared/data/cifar10-jpeg.tar.gz" in command:
                if archive is None:
                    continue  # synthetic-data run: the archive the docs name is not here
                command = command.replace("../shared/data/cifar10-jpeg.tar.gz", archive)
            command = (command.replace("EXP_A", first).replace("EXP_B", second)
                       .replace("quick-a quick-b", f"{first} {second}"))
            started = time.perf_counter()
            done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=repo, env=env,
                                  text=True, capture_output=True, timeout=900)
            print(f"{time.perf_counter() - started:6.1f} s  {command}")  # pytest -s shows them
            output = (done.stdout + done.stderr)[-3000:]
            if how == FAILS:
                assert done.returncode == 1, f"{command}: expected to fail\n{output}"
                assert done.stderr.count("error:") == 1, output
            else:
                assert done.returncode == 0, f"{command} (exit {done.returncode}):\n{output}"
                assert "Traceback" not in done.stderr, f"{command}:\n{output}"
    finally:
        for rel, data in kept.items():
            (repo / rel).write_bytes(data)
        (repo / "model.onnx").unlink(missing_ok=True)
        subprocess.run(["dvc", "queue", "remove", "--all"], cwd=repo, env=env, capture_output=True)
        run(["dvc", "checkout", "-q", "--force"], repo, env)
    assert changed_stages(repo, env) == set()


def test_a_method_runs_as_a_queued_experiment_and_its_rows_come_from_it(quick_run):
    """`methods run` queues the method as experiment methods-<name> on the quick base, one
    `dvc queue start` worker runs it in a copy of the repository (the workspace is not touched),
    the baseline comes from the run-cache, and the rows are read from the experiment's commit."""
    repo, env, _ = quick_run
    kept = {rel: (repo / rel).read_bytes() for rel in ("params.yaml", "reports/methods.csv")}
    args = ["methods", "run", "recal", "--base", "quick", "--wait"]
    if ARCHIVE.is_file():
        args += ["--data", str(ARCHIVE)]
    try:
        out = squeeze_cli(repo, env, *args)
        assert "methods-recal: Success" in out, out
        assert (repo / "params.yaml").read_bytes() == kept["params.yaml"]
        logs = run(["dvc", "queue", "logs", "methods-recal"], repo, env)
        assert "Running stage 'prune_structured@0.5'" in logs, logs[-3000:]
        assert "Running stage 'train'" not in logs  # the baseline: a run-cache hit
        rows = [r for r in csv.DictReader(io.StringIO(
            (repo / "reports/methods.csv").read_text())) if r["method"] == "recal"]
        quick = grid(repo)[0]
        assert [float(r["structured"]) for r in rows] == [float(a) for a in quick]
        pruned = rows[-1]
        assert pruned["accuracy_recalibrated"] != "" and pruned["finetune_epochs"] == "1"
        others = [r for r in csv.DictReader(io.StringIO(kept["reports/methods.csv"].decode()))
                  if r["method"] != "recal"]
        assert len(others) > 0 and all(r in list(csv.DictReader(io.StringIO(
            (repo / "reports/methods.csv").read_text()))) for r in others)
    finally:
        for rel, data in kept.items():
            (repo / rel).write_bytes(data)


def test_an_output_edited_in_place_cannot_corrupt_the_cache(quick_run):
    """cache.type reflink,copy (DVC's default): the workspace holds copies (or copy-on-write
    reflinks), never hardlinks or symlinks into the cache, so truncating an output in place (as
    root, whom a read-only bit does not stop) leaves the cache object whole, `dvc status` says
    the stage changed, and `dvc checkout` brings the right bytes back."""
    repo, env, _ = quick_run
    model = repo / "models/baseline.pt"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == "models/baseline.pt")
    cached = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    before = sha(cached)
    assert model.stat().st_nlink == 1 and not model.is_symlink()
    with open(model, "r+b") as fh:
        fh.truncate(1000)
    assert sha(cached) == before
    assert "train" in changed_stages(repo, env)
    run(["dvc", "checkout", "--force", "models/baseline.pt"], repo, env)
    assert sha(model) == before and changed_stages(repo, env) == set()


def test_a_misspelt_section_stops_repro_even_when_nothing_else_would_rerun(quick_run):
    """`evalute:` for `evaluate:` changes no stage's params; check_params depends on the file
    itself, so `dvc repro` runs it and stops with the one-line error instead of 'up to date'."""
    repo, env, _ = quick_run
    path = repo / "params.yaml"
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\nevalute:\n  latency_repeats: 3\n")
        out = run(["dvc", "repro"], repo, env, ok=False)
        assert "error: params.yaml: unknown key params.evalute" in out, out[-3000:]
        assert re.findall(r"Running stage '([^']+)'", out) == ["check_params"], out[-3000:]
    finally:
        path.write_bytes(original)
    run(["dvc", "repro"], repo, env)  # the file as it was: check_params reruns, passes, alone
    assert changed_stages(repo, env) == set()
