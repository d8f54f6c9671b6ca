"""`python -m squeeze check`, the profile command's checks before DVC touches params.yaml, the
restore after a failed run, the filtered DVC warning, and a reader that stops early (`| head`)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from squeeze import exprun
from squeeze.check import apply_sets, check, parse_set, sets_in
from squeeze.config import ConfigError, load_params

ROOT = Path(__file__).resolve().parents[2]
ARCHIVES = sorted((ROOT / "reports" / "runs").glob("*/tradeoff.csv"))


def squeeze(*args: str, cwd: Path = ROOT, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "squeeze", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_committed_params_pass_and_each_profile_too():
    check(ROOT / "params.yaml")
    for profile in ("quick", "cpu"):
        found = squeeze("check", "--profile", profile)
        assert found.returncode == 0 and found.stdout.startswith("ok"), found.stderr


def test_profiles_stack_on_the_command_line_a_later_one_winning():
    found = squeeze("check", "--profile", "quick", "--profile", "structured-fp32",
                    "--profile", "methods/recal")
    assert found.stdout == "ok: params valid with profile quick + structured-fp32 + methods/recal\n"
    printed = squeeze("profile", "quick", "structured-fp32", "methods/recal", "--print")
    assert printed.returncode == 0, printed.stderr
    command = printed.stdout.split()
    sets = [command[i + 1] for i, arg in enumerate(command) if arg == "-S"]
    assert "model.width=8" in sets and "'prune.unstructured.amounts=[0]'" in sets
    assert "'quantize.types=[fp32]'" in sets and "finetune.structured.recalibrate_batches=50" in sets
    assert "'quantize.types=[fp32, fp16, int8]'" not in sets  # the quick grid, overridden


@pytest.mark.parametrize("text, message", [
    ("prune.structured.amounts=[0,0.5,1.5]", "prune.structured.amounts contains 1.5"),
    ("evalute.latency_repeats=3", "no key evalute.latency_repeats"),
    ("+evalute.latency_repeats=3", "unknown key params.evalute"),
    ("train.epochs=0", "train.epochs = 0 is not allowed"),
    ("quantize.types=[int8,w4a4]", "quantize.types contains 'w4a4'"),
    ("+train.epochs=3", "train.epochs already exists"),
    ("train.epochs", "expected key=value"),
    ("~evaluate.nothing", "no key evaluate.nothing to remove"),
])
def test_bad_override_is_one_line_naming_it(text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("+", r"\+")):
        apply_and_validate(text)
    found = squeeze("check", "-S", text)
    assert found.returncode == 1 and message in found.stderr
    assert found.stderr.count("\n") == 1 and "Traceback" not in found.stderr


def apply_and_validate(text: str) -> None:
    from squeeze.config import validate
    validate(apply_sets(load_params(ROOT / "params.yaml"), [text]))


def test_override_grammar():
    assert parse_set("a.b=[0, 0.5]") == ("=", "a.b", [0, 0.5])
    assert parse_set("++a.b=int8") == ("++", "a.b", "int8")
    assert parse_set("~a.b") == ("~", "a.b", None)
    params = {"a": {"b": 1, "c": 2}}
    assert apply_sets(params, ["a.b=3", "~a.c", "+a.d=x", "++a.e=4"]) == {"a": {"b": 3, "d": "x", "e": 4}}
    assert params == {"a": {"b": 1, "c": 2}}  # a copy: the input is not touched
    assert sets_in(["-n", "x", "-S", "a=1", "--set-param", "b=2", "--set-param=c=3"]) == [
        "a=1", "b=2", "c=3"]


@pytest.mark.parametrize("override", [
    "train.lr=1e-3", "score.params_norm=5.6e6", "score.ops_norm=auto", "train.lr=0.01",
    "train.epochs=2", "train.deterministic=true", "data.path=yes", "data.path=../a/b.tar.gz",
    "prune.structured.amounts=[0, 0.5]", "quantize.types=[fp32,int8]", "model.kwargs={}",
    "model.arch=torchvision:mobilenet_v2", "data.path=", "data.path=null", "data.path=1:20"])
def test_scalar_overrides_read_as_dvc_reads_them(tmp_path, override):
    """squeeze's checks before a run read each -S value as `dvc exp run -S` does (DVC's own code
    is the oracle, then the file read back as the stages read it): Hydra's grammar, so `1e-3`
    and `5.6e6` are numbers (PyYAML reads them as strings), and `yes`, a string to Hydra, is
    written bare and read back as true."""
    import yaml
    from dvc.utils.hydra import apply_overrides

    params = load_params(ROOT / "params.yaml")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    apply_overrides(str(path), [override])
    assert apply_sets(params, [override]) == yaml.safe_load(path.read_text())


def test_profile_refuses_a_bad_override_before_dvc_and_leaves_params_as_they_were(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    before = (tmp_path / "params.yaml").read_bytes()
    start = time.perf_counter()
    found = squeeze("profile", "quick", "--", "-S", "prune.structured.amounts=[0,0.5,1.5]",
                    cwd=tmp_path)
    seconds = time.perf_counter() - start
    assert found.returncode == 1, found.stderr
    assert "prune.structured.amounts contains 1.5" in found.stderr
    assert "dvc exp run" not in found.stdout  # refused before the command was even printed
    assert (tmp_path / "params.yaml").read_bytes() == before
    print(f"refused in {seconds:.2f} s")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def test_a_failed_run_puts_params_and_its_index_entry_back(tmp_path, monkeypatch, capsys):
    git(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 3  # the study's comment\n")
    git(tmp_path, "add", "params.yaml")
    index_before = git(tmp_path, "ls-files", "-s", "params.yaml")
    monkeypatch.chdir(tmp_path)
    # what `dvc exp run -S` does before a stage fails: rewrite params.yaml, stage it, warn
    fake_dvc = ("printf 'train:\\n  epochs: 99\\n' > params.yaml && git add params.yaml && "
                "for i in 1 2 3; do echo \"WARNING: No file hash info found for '/x/m$i.pt'. "
                "It won't be created.\" >&2; done; echo 'ERROR: failed to reproduce' >&2; exit 3")
    code = exprun.run(["sh", "-c", fake_dvc])
    assert code == 3
    assert (tmp_path / "params.yaml").read_text() == "train:\n  epochs: 3  # the study's comment\n"
    assert git(tmp_path, "ls-files", "-s", "params.yaml") == index_before
    err = capsys.readouterr().err
    assert "No file hash info" not in err.replace("'No file hash info found'", "")
    assert "hid 3 DVC warnings" in err and "ERROR: failed to reproduce" in err
    assert "params.yaml restored" in err


def test_a_successful_run_keeps_what_dvc_wrote(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("a: 1\n")
    monkeypatch.chdir(tmp_path)
    assert exprun.run(["sh", "-c", "echo 'a: 2' > params.yaml"]) == 0
    assert (tmp_path / "params.yaml").read_text() == "a: 2\n"


@pytest.mark.parametrize("archive", ARCHIVES, ids=lambda p: p.parent.name)
def test_recommend_reads_every_committed_archive_and_stops_quietly_in_a_pipe(archive):
    found = squeeze("recommend", "--budget", "0.5", "--score", "score_seed", "--report",
                    str(archive))
    assert found.returncode == 0, found.stderr
    assert '"model"' in found.stdout and '"accuracy_interval_95"' in found.stdout
    cmd = [sys.executable, "-m", "squeeze", "recommend", "--budget", "0.5", "--score",
           "score_seed", "--report", str(archive)]
    quoted = " ".join(f"'{c}'" for c in cmd)
    for reader in ("head -3", "true"):  # `true` reads nothing: the write always meets a closed pipe
        piped = subprocess.run(["bash", "-o", "pipefail", "-c", f"{quoted} | {reader}"],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert piped.returncode == 0 and "Traceback" not in piped.stderr, piped.stderr
