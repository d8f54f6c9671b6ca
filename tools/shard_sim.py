"""The grid over N workers, simulated on one machine: separate clones sharing one local DVC remote.

    python tools/shard_sim.py --workers 2 --root /tmp/sim [--data ../shared/data/cifar10-jpeg.tar.gz]
        [--profile quick] [--threads T] [--json OUT]

1. `origin`: this working tree's files with the profile's overrides written into params.yaml
   and committed (a team commits the sweep it shards); `remote`: an empty folder, the DVC remote.
2. `worker-I` (I < N): a git clone of origin with `remote` as its default DVC remote. For each
   wave in order, every worker runs `python -m squeeze shard run --workers N --worker I --wave W`
   at the same time; the next wave starts when all have finished (a scheduler's afterok).
3. `fresh`: another clone, which runs `dvc fetch --run-cache` and `dvc repro --pull`: it should
   recompute nothing (every stage a run-cache hit).
Prints (and with --json writes) the wall seconds of each wave and of the whole, each worker's
log (upstream restores, stages ran or cached, push seconds) and what the fresh clone recomputed.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from benchlib import child_env, copy_sources  # noqa: E402
from squeeze import profiles  # noqa: E402
from squeeze.config import dotted_set  # noqa: E402
from squeeze.sharding.shard import WAVES  # noqa: E402


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed in {cwd} ({proc.returncode}): "
                 f"{(proc.stdout + proc.stderr).strip()[-3000:]}")
    return proc.stdout + proc.stderr


def environment(threads: int | None) -> dict:
    if threads:
        return child_env(SQUEEZE_DEVICE="cpu", OMP_NUM_THREADS=str(threads),
                         MKL_NUM_THREADS=str(threads))
    return child_env(SQUEEZE_DEVICE="cpu")


def make_origin(path: Path, profile: str, data: str | None, env: dict) -> None:
    path.mkdir(parents=True)
    copy_sources(ROOT, path)
    params = yaml.safe_load((path / "params.yaml").read_text())
    for key, value in profiles.with_data(profiles.load(profile, ROOT / "profiles"), data).items():
        dotted_set(params, key, value)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "config", "user.name", "squeeze-sim"],
                ["git", "config", "user.email", "sim@squeeze.invalid"],
                ["git", "add", "-A"], ["git", "commit", "-qm", f"sweep: {profile} profile"]):
        run(cmd, path, env)


def clone(origin: Path, path: Path, remote: Path, env: dict) -> Path:
    run(["git", "clone", "-q", str(origin), str(path)], origin.parent, env)
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], path, env)
    return path


def simulate(root: Path, workers: int, profile: str = "quick", data: str | None = None,
             threads: int | None = None) -> dict:
    env = environment(threads)
    root.mkdir(parents=True, exist_ok=True)
    origin, remote = root / "origin", root / "remote"
    make_origin(origin, profile, data, env)
    remote.mkdir()
    clones = [clone(origin, root / f"worker-{i}", remote, env) for i in range(workers)]
    result = {"workers": workers, "profile": profile, "waves": [], "logs": []}
    started = time.perf_counter()
    for wave in range(len(WAVES)):
        t = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "squeeze", "shard", "run", "--workers",
                                   str(workers), "--worker", str(i), "--wave", str(wave)],
                                  cwd=path, env=env, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
                 for i, path in enumerate(clones)]
        for i, proc in enumerate(procs):
            out, err = proc.communicate()
            if proc.returncode != 0:
                sys.exit(f"error: worker {i} failed in wave {wave} ({proc.returncode}): "
                         f"{err.strip()[-3000:]}")
            result["logs"].append(json.loads(out))
        result["waves"].append({"wave": wave, "name": WAVES[wave],
                                "seconds": round(time.perf_counter() - t, 2)})
    result["seconds"] = round(time.perf_counter() - started, 2)

    fresh = clone(origin, root / "fresh", remote, env)
    t = time.perf_counter()
    run(["dvc", "fetch", "--run-cache"], fresh, env)  # the entries; --pull fetches outputs
    result["fresh_pull_seconds"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    output = run(["dvc", "repro", "--pull"], fresh, env)
    result["fresh_repro_seconds"] = round(time.perf_counter() - t, 2)
    result["fresh_recomputed"] = re.findall(r"Running stage '([^']+)'", output)
    result["fresh_cached"] = len(re.findall(r"is cached - skipping run", output))
    result["fresh"] = str(fresh)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", required=True, help="an empty or new folder for the clones")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--data", help="an ImageFolder tree or .tar.gz (data.source: folder)")
    parser.add_argument("--threads", type=int, help="torch threads per worker (OMP_NUM_THREADS); "
                        "results are bit-identical to another run only at the same thread count")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    root = Path(args.root)
    if root.exists() and any(root.iterdir()):
        sys.exit(f"error: --root {root} is not empty")
    data = str(Path(args.data).resolve()) if args.data else None  # the clones live elsewhere
    result = simulate(root, args.workers, args.profile, data, args.threads)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
