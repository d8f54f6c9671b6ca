"""Reliability, proven through the real stage scripts: bad input fails in one line before any work
and leaves no outputs; a killed training run resumes to identical weights; two runs agree exactly;
nothing in the project unpickles arbitrary objects.

Every stage runs in a process of its own, with the command line from dvc.yaml where there is one.
Starting torch (its import, then torch._dynamo on the first optimizer) takes 5-15 s on the shared
test machines, so most runs are forked from one clean interpreter that did that once (`Zygote`,
tests/support/zygote.py). The run that is killed is a fresh interpreter.

Unit-level checks of the same errors are in test_config.py, test_data.py and test_checkpoint.py;
in-process resume and divergence in test_train.py; `dvc repro` twice in test_pipeline_e2e.py.
"""
from __future__ import annotations

import ast
import copy
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from squeeze import checkpoint, models
from zygote import Zygote
from squeeze.config import DataConfig, dotted_set
from squeeze.data import prepare
from squeeze.fsutil import write_json
from squeeze.models import ResNetSpec

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SQUEEZE_DEVICE": "cpu"}
TIMING = ("epoch_seconds", "images_per_second")
MODEL, LOG = "models/baseline.pt", "metrics/train/baseline.csv"  # the train stage's outputs
# Small enough for seconds on one core; 16 steps per epoch, so that on an idle machine epochs 3
# and 4 still take long enough for the kill test to land in them.
TINY = {"data.source": "synthetic", "data.train_subset": 0, "data.test_subset": 0,
        "data.synthetic_train_size": 512, "data.synthetic_test_size": 32, "data.seed": 0,
        "model.width": 4, "train.epochs": 4, "train.batch_size": 32, "train.lr": 0.05,
        "train.seed": 0, "prune.structured.amounts": [0, 0.5],
        "prune.unstructured.amounts": [0, 0.5], "quantize.types": ["fp32", "fp16", "int8"],
        "evaluate.latency_warmup": 0, "evaluate.latency_repeats": 1}


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote"), ENV)
    yield z
    z.close()
    assert z.stderr.read_text() == "", "importing squeeze writes to stderr"


# ---- params, commands and files ------------------------------------------------------------------

def write_params(path: Path, overrides: dict | None = None) -> Path:
    """The project's params.yaml with TINY and then `overrides` (dotted keys) applied."""
    params = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    for dotted, value in {**TINY, **(overrides or {})}.items():
        dotted_set(params, dotted, value)
    path.write_text(yaml.safe_dump(params))
    return path


def stage(name: str) -> Path:
    return ROOT / "stages" / f"{name}.py"


def dvc_command(name: str, params: Path) -> list[str]:
    """The stage's command line from dvc.yaml (relative paths, as DVC runs it)."""
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][name]["cmd"].split()
    assert cmd[:2] == ["python", f"stages/{name}.py"]
    return [sys.executable, str(stage(name)), *cmd[2:], "--params", str(params)]


def history(path: Path) -> list[dict]:
    with path.open() as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def assert_same_model(a: Path, b: Path) -> None:
    pa, pb = checkpoint.load(a, kind="model"), checkpoint.load(b, kind="model")
    sa, sb = pa["state_dict"], pb["state_dict"]
    assert sa.keys() == sb.keys()
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert differ == [], f"tensors differ: {differ[:5]}"
    assert (pa["config"], pa["epoch"], pa["spec"]) == (pb["config"], pb["epoch"], pb["spec"])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """params.yaml, prepared tiny data and a width-4 model, laid out as dvc.yaml expects."""
    root = tmp_path_factory.mktemp("project")
    params = write_params(root / "params.yaml")
    write_json(root / "metrics/prepare.json",
               prepare(DataConfig.from_params(yaml.safe_load(params.read_text())["data"]),
                       root / "data/prepared/dataset.npz"))
    torch.manual_seed(0)
    checkpoint.save_model(root / "models/base.pt", models.build(ResNetSpec.resnet18(4)),
                          config={}, epoch=1)
    return root


@pytest.fixture(scope="module")
def reference(project, zygote):
    """An uninterrupted train stage in `project`: the run the others must match."""
    result = zygote.run(dvc_command("train", project / "params.yaml")[1:], project)
    assert result.returncode == 0, result.stderr
    assert not (project / "runs/resume/train.pt").exists()
    return project


def copy_inputs(project: Path, dest: Path, *files: str) -> Path:
    for rel in ("params.yaml", *files):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / rel, dest / rel)
    return dest


# ---- kill -9 and resume (first: its fresh interpreter starts while the zygote does) -------------

def resume_epoch(path: Path) -> int:
    return checkpoint.load(path, kind="resume")["epoch"] if path.exists() else 0


def test_killed_training_resumes_to_the_same_weights(project, zygote, request, tmp_path):
    """`kill -9` of the train stage (a fresh interpreter) in epoch 3 of 4, then the same command:
    it resumes from the last completed epoch and ends with the weights, metrics and history of an
    uninterrupted run."""
    run = copy_inputs(project, tmp_path, "data/prepared/dataset.npz")
    cmd, resume = dvc_command("train", run / "params.yaml"), run / "runs/resume/train.pt"
    proc = subprocess.Popen(cmd, cwd=run, env=ENV, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    watchdog = threading.Timer(300, proc.kill)  # a hung run fails the test instead of hanging it
    watchdog.start()
    try:
        output = []
        for line in proc.stdout:
            output.append(line)
            if line.startswith("baseline epoch 2/"):
                break
        while proc.poll() is None and resume_epoch(resume) < 2:
            time.sleep(0.01)
        assert proc.poll() is None, f"training ended before it could be killed: {output}"
        proc.send_signal(signal.SIGKILL)
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    # no declared output is left for DVC to cache: each is still under its temporary name
    assert not (run / MODEL).exists() and not (run / LOG).exists()
    partial_log = (run / LOG).with_name(".partial-" + (run / LOG).name)
    killed_epochs = [int(row["epoch"]) for row in history(partial_log)]
    assert killed_epochs[:2] == [1, 2], "the per-epoch log is whole after the kill"
    last_saved = resume_epoch(resume)

    second = zygote.run(cmd[1:], run)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"resuming from epoch {last_saved} " in second.stdout, second.stdout
    assert "baseline epoch 1/" not in second.stdout, "no completed epoch is run again"
    assert not resume.exists()
    reference = request.getfixturevalue("reference")  # now, so it does not race the kill
    assert_same_model(run / MODEL, reference / MODEL)
    assert history(run / LOG) == history(reference / LOG)


# ---- determinism ---------------------------------------------------------------------------------

def test_two_runs_give_identical_results(reference, zygote, tmp_path):
    """prepare and train again in another folder: the same data, metrics files (but for timings),
    history and weights, bit for bit. (That a fresh interpreter computes the same is shown by the
    kill test: its first epochs run in one.)"""
    run = copy_inputs(reference, tmp_path)
    params = run / "params.yaml"
    assert zygote.run(dvc_command("prepare", params)[1:], run).returncode == 0
    for output in ("data/prepared/dataset.npz", "metrics/prepare.json"):  # as DVC hashes them
        assert (run / output).read_bytes() == (reference / output).read_bytes(), output

    second = zygote.run(dvc_command("train", params)[1:], run)
    assert second.returncode == 0 and second.stderr == "", second.stderr
    assert history(run / LOG) == history(reference / LOG)
    assert_same_model(run / MODEL, reference / MODEL)
    assert (run / MODEL).read_bytes() == (reference / MODEL).read_bytes(), "checkpoints are byte-identical"
    timing = ("train_seconds", "images_per_second", "epoch_wall_seconds")
    same = [{k: v for k, v in json.loads((root / "metrics/baseline.json").read_text()).items()
             if k not in timing} for root in (run, reference)]
    assert same[0] == same[1]
    assert same[0]["accuracy"] == float(history(run / LOG)[-1]["test_accuracy"]), \
        "the last epoch's logged accuracy and the stage's measurement are one number"


# ---- the contract of a failing stage -------------------------------------------------------------

def run_failing(zygote: Zygote, argv: list, cwd: Path, setup: str = "") -> str:
    """Run a stage over stale outputs that must fail; check exit 1, one `error:` line on stderr
    and no output left behind (stale or temporary). Returns the error line."""
    outs = [cwd / value for flag, value in zip(argv, argv[1:]) if str(flag).startswith("--out")]
    assert outs and all(cwd / "out" in out.parents for out in outs)
    for out in outs:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("stale output of an earlier run\n")
    result = zygote.run(argv, cwd, setup)
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    left = [p for p in (cwd / "out").rglob("*") if p.is_file()]
    assert left == [], f"a failed stage left {left}"
    return lines[0]


def assert_names(line: str, *fragments) -> None:
    for fragment in fragments:
        assert str(fragment) in line, f"{fragment!r} not in {line!r}"


def prepare_argv(params: Path) -> list:
    return [stage("prepare"), "--params", params, "--out", "out/dataset.npz",
            "--out-summary", "out/prepare.json"]


def train_argv(params: Path, data: Path) -> list:
    return [stage("train"), "--params", params, "--data", data, "--out", "out/baseline.pt",
            "--out-metrics", "out/baseline.json", "--out-log", "out/baseline.csv",
            "--resume", "resume/train.pt"]


def prune_argv(params: Path, project: Path) -> list:
    return [stage("prune_structured"), "--params", params, "--amount", "0.5",
            "--base", project / "models/base.pt", "--data", project / "data/prepared/dataset.npz",
            "--out", "out/s0.5.pt", "--out-metrics", "out/s0.5.json", "--out-log", "out/s0.5.csv",
            "--resume", "resume/s0.5.pt", "--sensitivity", "sensitivity.csv"]


def quantize_argv(params: Path, project: Path, quant: str = "fp32", base: Path | None = None):
    return [stage("quantize"), "--params", params, "--structured", "0", "--unstructured", "0",
            "--quant", quant, "--base", base or project / "models/base.pt",
            "--baseline", project / "models/base.pt",
            "--data", project / "data/prepared/dataset.npz",
            "--out", f"out/s0-u0-{quant}.pt", "--out-metrics", f"out/s0-u0-{quant}.json"]


# ---- bad data: the prepare stage -----------------------------------------------------------------

def png(size: int = 32, mode: str = "RGB") -> bytes:
    pixels = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def image_folder(path: Path, train=("cat", "dog"), test=("cat", "dog"), extra=None) -> Path:
    """A .tar.gz ImageFolder: two images per class and split, plus `extra` {name: bytes}."""
    files = {f"{split}/{cls}/{i}.png": png()
             for split, classes in (("train", train), ("test", test)) for cls in classes
             for i in range(2)}
    with tarfile.open(path, "w:gz") as tar:
        for name, content in {**files, **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def folder(path: Path) -> dict:
    return {"data.source": "folder", "data.path": str(path)}


def unknown_source(tmp: Path):
    return {"data.source": "imagenet"}, ["data.source = 'imagenet'", "cifar10, cifar100, folder, synthetic"]


def missing_path(tmp: Path):
    path = tmp / "missing.tar.gz"
    return folder(path), ["data.path", path, "does not exist", "ImageFolder tree or .tar.gz"]


def not_an_archive(tmp: Path):
    path = tmp / "images.tar.gz"
    path.write_text("<html>404 Not Found</html>\n")
    return folder(path), [path, "not a readable tar archive", "expected a .tar.gz"]


def truncated_archive(tmp: Path):
    path = image_folder(tmp / "images.tar.gz")
    path.write_bytes(path.read_bytes()[:-200])
    return folder(path), [path, "not a readable tar archive", "end-of-stream"]


def different_classes(tmp: Path):
    path = image_folder(tmp / "images.tar.gz", test=("cat", "horse"))
    return folder(path), [path, "different classes", "'dog'", "'horse'"]


def grey_image(tmp: Path):
    path = image_folder(tmp / "images.tar.gz", extra={"test/dog/grey.png": png(mode="L")})
    return folder(path), ["test/dog/grey.png", "is 32x32 L", "must be RGB"]


@pytest.mark.parametrize("case", [unknown_source, missing_path, not_an_archive, truncated_archive,
                                  different_classes, grey_image],  # any size: data.image_size
                         ids=lambda case: case.__name__)
def test_prepare_rejects_bad_data(zygote, tmp_path, case):
    overrides, fragments = case(tmp_path)
    params = write_params(tmp_path / "params.yaml", overrides)
    assert_names(run_failing(zygote, prepare_argv(params), tmp_path), *fragments)


# ---- bad training values: the train stage --------------------------------------------------------

@pytest.mark.parametrize("key, value, allowed", [
    ("train.epochs", 0, "an integer from 1 to"),
    ("train.batch_size", -64, "an integer from 1 to"),
    ("train.lr", 0, "a number > 0"),
    ("train.lr", "fast", "a number > 0"),
    ("model.width", 0, "an integer from 1 to"),
])
def test_train_rejects_bad_values(zygote, project, tmp_path, key, value, allowed):
    params = write_params(tmp_path / "params.yaml", {key: value})
    line = run_failing(zygote, train_argv(params, project / "data/prepared/dataset.npz"), tmp_path)
    assert_names(line, f"{key} = {value!r}", allowed)


def test_train_rejects_missing_data_file(zygote, tmp_path):
    params, missing = write_params(tmp_path / "params.yaml"), tmp_path / "no-such.npz"
    line = run_failing(zygote, train_argv(params, missing), tmp_path)
    assert_names(line, missing, "prepared data not found", "run the prepare stage first")


def test_diverging_training_stops_and_writes_no_model(zygote, project, tmp_path):
    params = write_params(tmp_path / "params.yaml", {"train.lr": 1e8})
    line = run_failing(zygote, train_argv(params, project / "data/prepared/dataset.npz"), tmp_path)
    assert_names(line, "in epoch 1", "lower the learning rate", "lr is 100000000.0",
                 "no model was written")
    assert re.search(r"loss became (nan|inf|-inf) ", line), line


# ---- bad pruning grids: the prune_structured stage -----------------------------------------------

@pytest.mark.parametrize("amounts, fragment", [
    ([0, 1.0], "contains 1.0; each amount must be a number in [0, 1)"),
    ([0, -0.5], "contains -0.5; each amount must be a number in [0, 1)"),
    ([0, 0.5, 0.5], "repeats [0.5]; amounts must be distinct"),
    ([0, "half"], "contains 'half'"),
    ([], "= [] is not allowed; expected a non-empty list"),
], ids=["one", "negative", "duplicate", "not-a-number", "empty"])
def test_prune_rejects_bad_amounts(zygote, project, tmp_path, amounts, fragment):
    params = write_params(tmp_path / "params.yaml", {"prune.structured.amounts": amounts})
    line = run_failing(zygote, prune_argv(params, project), tmp_path)
    assert_names(line, "prune.structured.amounts", fragment)


# ---- quantize: types, base checkpoints, int8 backend ---------------------------------------------

def test_quantize_rejects_unknown_type_in_params(zygote, project, tmp_path):
    params = write_params(tmp_path / "params.yaml", {"quantize.types": ["fp32", "int4"]})
    line = run_failing(zygote, quantize_argv(params, project), tmp_path)
    assert_names(line, "quantize.types contains 'int4'", "one of fp32, fp16, int8")


def test_quantize_rejects_an_unknown_type_argument(zygote, project, tmp_path):
    params = write_params(tmp_path / "params.yaml")
    line = run_failing(zygote, quantize_argv(params, project, quant="int4"), tmp_path)
    assert_names(line, "quantize.int4 is missing", "there: fp16, fp32, int8, mix_budgets, mixed, qat, qat_types, types")


# ---- a bad value anywhere stops every stage, before it reads anything --------------------------

@pytest.mark.parametrize("stage_name", ["prepare", "train", "sensitivity", "prune_structured",
                                        "quantize"])
@pytest.mark.parametrize("key, value, fragments", [
    ("prune.structured.amounts", [0, 0.1, 1.2], ["prune.structured.amounts", "1.2", "[0, 1)"]),
    ("prune.structured.target", "flops", ["prune.structured.target", "'flops'",
                                          "one of channels, params, ops"]),
    ("quantize.int8.calibration_batches", 0, ["quantize.int8.calibration_batches", "from 1 to"]),
    ("evaluate.latency_threads", "two", ["evaluate.latency_threads", "'two'"]),
], ids=["amount", "target", "int8", "evaluate"])
def test_every_stage_checks_the_whole_params_file_first(zygote, project, tmp_path, stage_name,
                                                         key, value, fragments):
    """Whatever part a stage reads, a bad value anywhere stops it in one line before it touches
    its inputs: here they do not even exist, and the error is about the value, not a file."""
    params = write_params(tmp_path / "params.yaml", {key: value})
    missing = tmp_path / "no-such-input"
    argv = {"prepare": prepare_argv(params),
            "train": train_argv(params, missing),
            "sensitivity": [stage("sensitivity"), "--params", params, "--base", missing,
                            "--data", missing, "--out", "out/sensitivity.csv"],
            "prune_structured": prune_argv(params, missing),
            "quantize": quantize_argv(params, missing)}[stage_name]
    assert_names(run_failing(zygote, argv, tmp_path), *fragments)


class Exploit:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def truncated(base: Path, path: Path):
    path.write_bytes(base.read_bytes()[: base.stat().st_size // 2])
    return ["not a readable checkpoint: truncated or corrupt"]


def not_a_checkpoint(base: Path, path: Path):
    path.write_text("version https://git-lfs.github.com/spec/v1\nsize 217483\n")
    return ["not a readable checkpoint"]


def spec_mismatch(base: Path, path: Path):
    payload = checkpoint.load(base, kind="model")
    payload["spec"] = ResNetSpec.resnet18(8).to_dict()
    checkpoint.save(path, payload)
    return ["architecture spec does not match its weights", "'conv1.weight'"]


def pickled_code(base: Path, path: Path):
    payload = {"format": checkpoint.FORMAT, "kind": "model", "evil": Exploit(path.parent / "pwned")}
    torch.save(payload, path)
    return ["refused to load", "never unpickled"]


@pytest.mark.parametrize("damage", [truncated, not_a_checkpoint, spec_mismatch, pickled_code],
                         ids=lambda damage: damage.__name__)
def test_quantize_rejects_bad_base_checkpoint(zygote, project, tmp_path, damage):
    params, base = write_params(tmp_path / "params.yaml"), tmp_path / "bad.pt"
    fragments = damage(project / "models/base.pt", base)
    line = run_failing(zygote, quantize_argv(params, project, base=base), tmp_path)
    assert not (tmp_path / "pwned").exists(), "the pickled command ran"
    assert_names(line, base, *fragments)


def test_int8_without_its_engine_package(zygote, project, tmp_path):
    params = write_params(tmp_path / "params.yaml")
    no_ort = ("import importlib.util as u; real = u.find_spec; "
              "u.find_spec = lambda name, *a: None if name == 'onnxruntime' else real(name, *a)")
    line = run_failing(zygote, quantize_argv(params, project, quant="int8"), tmp_path,
                       setup=no_ort)
    assert_names(line, "quantize.int8.engine = 'onnxruntime' needs the Python package "
                 "'onnxruntime'", "pip install onnxruntime")


# ---- safe loading --------------------------------------------------------------------------------

UNPICKLERS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "dill.loads",
              "joblib.load", "marshal.load", "marshal.loads", "yaml.load", "yaml.unsafe_load",
              "torch.jit.load"}


def unsafe_loads(source: str) -> list[str]:
    """Calls that can unpickle arbitrary objects: torch.load without weights_only=True, np.load
    without allow_pickle=False, and the unpicklers above (called as module.function or imported
    from their module)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [f"from {node.module} import {a.name}" for a in node.names
                      if f"{node.module}.{a.name}" in UNPICKLERS | {"torch.load", "numpy.load"}]
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: k.value.value for k in node.keywords
                    if isinstance(k.value, ast.Constant)}
        if (name in UNPICKLERS
                or name == "torch.load" and keywords.get("weights_only") is not True
                or name in ("np.load", "numpy.load") and keywords.get("allow_pickle") is not False):
            found.append(ast.unparse(node))
    return found


def test_nothing_unpickles_arbitrary_objects():
    assert unsafe_loads("torch.load(p)") and unsafe_loads("torch.load(p, weights_only=False)")
    assert unsafe_loads("np.load(p)") and unsafe_loads("np.load(p, allow_pickle=True)")
    assert unsafe_loads("pickle.loads(b)") and unsafe_loads("from pickle import load")
    assert not unsafe_loads("torch.load(p, map_location='cpu', weights_only=True)")
    assert not unsafe_loads("np.load(p, allow_pickle=False)")
    files = sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "stages").glob("*.py"))
    assert len(files) > 10
    found = {str(f.relative_to(ROOT)): unsafe_loads(f.read_text()) for f in files}
    # the one exception: export reads back the TorchScript file it has just written itself (to
    # a private temporary path) to check it; no input from outside is ever loaded this way
    assert {f: calls for f, calls in found.items() if calls} == {
        "src/squeeze/deploy/export.py": ["torch.jit.load(str(path))"]}


# ---- a crash of any kind at a stage's last step leaves no declared output --------------------

CRASH_AT_COMMIT = """
import os, runpy, signal, sys
from squeeze import cli
def crash(pairs):
    os.kill(os.getpid(), signal.{sig})  # the outputs are written; moving them into place is next
cli.commit_outputs = crash
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("sig", ["SIGSEGV", "SIGKILL"])
@pytest.mark.parametrize("name", ["prepare", "quantize"])
def test_a_crash_at_the_last_step_leaves_no_output(project, tmp_path, sig, name):
    """The quantize stage once segfaulted in its latency measurement (latency_threads 100000)
    after it had written its model file; DVC then found an output of a failed stage. Now every
    output is staged under a temporary name until the stage succeeds."""
    run = copy_inputs(project, tmp_path, "data/prepared/dataset.npz", "models/base.pt")
    if name == "prepare":
        argv = [stage("prepare"), "--params", "params.yaml", "--out", "out/dataset.npz",
                "--out-summary", "out/prepare.json"]
    else:
        argv = [stage("quantize"), "--params", "params.yaml", "--structured", "0",
                "--unstructured", "0", "--quant", "fp32", "--base", "models/base.pt",
                "--baseline", "models/base.pt", "--data", "data/prepared/dataset.npz",
                "--out", "out/model.pt",
                "--out-metrics", "out/model.json"]
    done = subprocess.run([sys.executable, "-c", CRASH_AT_COMMIT.format(sig=sig),
                           *map(str, argv)], cwd=run, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == -getattr(signal, sig), done.stderr[-2000:]
    written = sorted(p.name for p in (run / "out").iterdir())
    # the outputs were complete, under their temporary names, when the crash came
    assert written and all(n.startswith(".partial-") for n in written), written
    # and the next run of the stage clears them before it writes its own
    again = subprocess.run([sys.executable, *map(str, argv)], cwd=run, env=ENV,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert sorted(p.name for p in (run / "out").iterdir()) == sorted(
        n.removeprefix(".partial-") for n in written)


def test_data_with_more_classes_than_the_model_stops_train_in_one_line(project, zygote, tmp_path):
    """An ImageFolder archive with an 11th class folder passes prepare (its classes are the
    folders); train, the first stage that reads both the data and model.num_classes, stops
    before any training and names both."""
    from squeeze.prepared import load_prepared, save

    run = copy_inputs(project, tmp_path, "data/prepared/dataset.npz")
    ds, _, _ = load_prepared(run / "data/prepared/dataset.npz")
    ds.classes = [*ds.classes, "zebra"]
    save(ds, run / "data/prepared/dataset.npz")
    cmd = dvc_command("train", run / "params.yaml")
    line = run_failing(zygote, [cmd[1], "--params", "params.yaml", "--data",
                                "data/prepared/dataset.npz", "--out", "out/model.pt",
                                "--out-metrics", "out/m.json", "--out-log", "out/log.csv",
                                "--resume", "runs/resume/x.pt"], run)
    assert_names(line, "the data has 11 classes", "zebra", "model.num_classes is 10",
                 "set model.num_classes: 11")
