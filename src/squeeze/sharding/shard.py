"""The grid split across workers: a plan of waves, and one worker's share of one wave.

DVC already has the parts: a shared remote holds outputs and the run-cache (a stage's outputs
keyed by its command, the hashes of its deps and its params), `dvc repro --single-item` runs one
stage. This module only decides who runs what, in which order, and moves results through the
remote:

- `plan(stages, params, workers)`: the stages of `dvc stage list` in waves, in dependency order
  (baseline: prepare, train, sensitivity; structured; unstructured; quantize; report), each wave
  a list of `workers` lists of stage names, balanced by an estimated cost. A stage that depends on
  another of its own wave (train on prepare) runs on the same worker, after it.
- `run_wave(...)`: one worker's list of one wave. It fetches the remote's run-cache, restores the
  outputs of every stage its stages depend on from it (never recomputing one: a missing one is an
  error naming the wave to run first), runs each of its stages with `dvc repro --single-item
  --pull` (a run already in the remote's run-cache is restored, not rerun) and pushes the
  outputs and run-cache after each stage, so a worker that dies loses only the stage it was in.

Costs are estimates in *baseline epochs*: training epochs times the model's ops relative to the
baseline ((1 - s)^2 for structured amount s), plus a small constant for a stage's evaluation.
Waves are scheduled by the engine that runs them (Slurm, Kubernetes, a shell loop: see launch.py);
nothing here waits for anyone.
"""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..errors import SqueezeError

if TYPE_CHECKING:
    from ..config import Params

WAVES = ("baseline", "structured", "unstructured", "quantize", "report")
WAVE_OF = {"check_params": 0, "prepare": 0, "train": 0, "sensitivity": 0, "prune_structured": 1,
           "prune_unstructured": 2, "quantize": 3, "report": 4, "export": 4}
EVALUATION = 0.05  # one evaluation pass plus process start-up, in baseline epochs (a guess)
GROUPS = 12  # ResNet-18's filter groups (4 residual streams, 8 block-internal convs)
DISTILL_COST = 1.96  # a distilled fine-tune epoch over a plain one (tools/bench.py --only distill)


class ShardError(SqueezeError, ValueError):
    """A plan or a worker's run that cannot go on; one line."""


@dataclass(frozen=True)
class Stage:
    name: str  # as `dvc stage list` names it: kind or kind@item
    needs: tuple[str, ...] = ()  # the stages whose outputs it depends on

    @property
    def kind(self) -> str:
        return self.name.split("@")[0]

    @property
    def item(self) -> list[str]:
        return self.name.split("@", 1)[1].split("-") if "@" in self.name else []


def _finetune_epochs(params: Params, which: str) -> float:
    ft = getattr(params.finetune, which)
    return ft.epochs * (DISTILL_COST if ft.distill_alpha else 1.0)


def cost(stage: Stage, params: Params) -> float:
    """The stage's estimated cost in baseline epochs."""
    kind, item = stage.kind, stage.item
    if kind == "train":
        return params.train.epochs + EVALUATION
    if kind == "sensitivity":
        images = params.data.train_subset or 50_000
        passes = GROUPS * len(params.sensitivity.amounts)
        return passes * params.sensitivity.images / images / 3 + EVALUATION
    if kind == "prune_structured":
        s = float(item[0])
        epochs = _finetune_epochs(params, "structured") if s > 0 else 0.0
        return (epochs + EVALUATION) * (1 - s) ** 2
    if kind == "prune_unstructured":
        s, u = float(item[0]), float(item[1])
        epochs = _finetune_epochs(params, "unstructured") if u > 0 else 0.0
        return (epochs + EVALUATION) * (1 - s) ** 2
    if kind == "quantize":
        return EVALUATION * (1 - float(item[0])) ** 2
    return EVALUATION  # check_params, prepare, report, export


def wave_of(stage: Stage) -> int:
    if stage.kind not in WAVE_OF:
        raise ShardError(f"stage {stage.name!r} is of no known wave; known stage kinds: "
                         f"{', '.join(WAVE_OF)} (add the new kind to shard.WAVE_OF)")
    return WAVE_OF[stage.kind]


def _chains(stages: list[Stage]) -> list[list[Stage]]:
    """The wave's stages joined where one depends on another (in the order given, which is
    dependency order), so that each chain runs on one worker."""
    owner: dict[str, int] = {}
    chains: list[list[Stage]] = []
    for stage in stages:
        linked = sorted({owner[n] for n in stage.needs if n in owner})
        if not linked:
            owner[stage.name] = len(chains)
            chains.append([stage])
            continue
        keep = linked[0]
        for other in linked[1:]:  # a stage joining two chains merges them
            chains[keep] += chains[other]
            for s in chains[other]:
                owner[s.name] = keep
            chains[other] = []
        chains[keep].append(stage)
        owner[stage.name] = keep
    order = {s.name: i for i, s in enumerate(stages)}
    return [sorted(c, key=lambda s: order[s.name]) for c in chains if c]


def plan(stages: Sequence[Stage], params: Params, workers: int) -> dict:
    """The waves: each stage exactly once, each wave's chains spread over `workers` lists by
    longest-first greedy balancing (each chain to the least loaded list so far)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ShardError(f"workers {workers!r} is not a positive whole number")
    wave = {s.name: wave_of(s) for s in stages}
    for s in stages:
        for n in s.needs:
            if n not in wave:
                raise ShardError(f"stage {s.name!r} depends on {n!r}, which is not a stage")
            if wave[n] > wave[s.name]:
                raise ShardError(f"stage {s.name!r} (wave {WAVES[wave[s.name]]}) depends on "
                                 f"{n!r} of the later wave {WAVES[wave[n]]}")
    costs = {s.name: round(cost(s, params), 4) for s in stages}
    waves = []
    for index, name in enumerate(WAVES):
        chains = [(sum(costs[s.name] for s in chain), chain)
                  for chain in _chains([s for s in stages if wave[s.name] == index])]
        chains.sort(key=lambda weighed: -weighed[0])  # stable: ties keep dependency order
        lists: list[list[str]] = [[] for _ in range(workers)]
        loads = [0.0] * workers
        for load, chain in chains:
            w = loads.index(min(loads))
            lists[w] += [s.name for s in chain]
            loads[w] += load
        waves.append({"wave": index, "name": name, "workers": lists,
                      "cost": [round(x, 3) for x in loads]})
    return {"workers": workers,
            "cost_unit": "baseline epochs: training epochs x ops relative to the baseline, "
                         f"+ {EVALUATION} per stage for evaluation (an estimate)",
            "total_cost": round(sum(costs.values()), 3),
            "critical_path_cost": round(sum(max(w["cost"]) for w in waves), 3),
            "waves": waves, "costs": costs}


# ---- DVC ---------------------------------------------------------------------------------------

def dvc_stages(root: Path) -> list[Stage]:
    """`dvc stage list`'s stages in dependency order, with the stages each depends on."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return _stages(repo.index.graph)


def _stages(graph) -> list[Stage]:
    """A DVC index graph (edges: stage -> the stages it depends on) as Stages, dependencies
    first."""
    import networkx as nx

    order = list(reversed(list(nx.topological_sort(graph))))
    return [Stage(s.addressing, tuple(sorted(d.addressing for d in graph.successors(s))))
            for s in order]


def repo_plan(root: Path, workers: int, stages: Sequence[Stage] | None = None) -> dict:
    """The plan of the repository at `root` (its params.yaml validated first); `stages` when
    the caller has already read them from DVC's index."""
    from ..config import load_params, validate

    params = validate(load_params(Path(root) / "params.yaml"))
    return plan(dvc_stages(root) if stages is None else stages, params, workers)


@dataclass
class WaveLog:
    """What one worker did in one wave, with the seconds each step took (the JSON it prints)."""
    wave: int
    worker: int
    stages: list[str]
    fetch_seconds: float = 0.0
    restored: list[dict] = field(default_factory=list)  # upstream outputs from the run-cache
    ran: list[dict] = field(default_factory=list)  # this worker's stages: ran or cached
    push_seconds: float = 0.0


def _dvc(args: list[str], cwd: Path) -> str:
    """A dvc command whose stages import this clone's `squeeze` (the code its deps hash), not
    whichever one the environment has installed."""
    import os

    src = str(Path(cwd).resolve() / "src")
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else "")}
    proc = subprocess.run(["dvc", *args], cwd=cwd, text=True, capture_output=True, env=env)
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise ShardError(f"`dvc {' '.join(args)}` failed ({proc.returncode}): {tail}")
    return proc.stdout + proc.stderr


def run_wave(root: Path, workers: int, worker: int, wave: int,
             say: Callable[[str], None] = print) -> WaveLog:
    """Worker `worker` of `workers` runs its list of wave `wave` (see the module's docstring)."""
    root = Path(root)
    if not 0 <= wave < len(WAVES):
        raise ShardError(f"wave {wave} does not exist; allowed: 0..{len(WAVES) - 1} "
                         f"({', '.join(WAVES)})")
    if not 0 <= worker < workers:
        raise ShardError(f"worker {worker} is not one of 0..{workers - 1}")

    import logging

    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage.cache import RunCacheNotFoundError

    logging.getLogger("dvc").setLevel(logging.WARNING)  # its "is cached" lines: ours are on say
    with Repo(str(root)) as repo, repo.lock:  # the lock every dvc command holds
        graph = repo.index.graph  # edges: stage -> the stages it depends on
        the_plan = repo_plan(root, workers, _stages(graph))
        mine = the_plan["waves"][wave]["workers"][worker]
        log = WaveLog(wave, worker, mine)
        if not mine:
            say(f"worker {worker}: nothing to do in wave {wave} ({WAVES[wave]})")
            return log
        if not repo.config["core"].get("remote"):
            raise ShardError("no default DVC remote; add the shared one with "
                             "`dvc remote add -d NAME URL` (see README, Many machines)")
        wave_index = {n: w["wave"] for w in the_plan["waves"]
                      for names in w["workers"] for n in names}
        started = time.perf_counter()
        repo.stage_cache.pull(None)  # the remote's run-cache entries (not yet their outputs)
        log.fetch_seconds = round(time.perf_counter() - started, 3)
        by_name = {s.addressing: s for s in graph}
        needed = set().union(*(nx.descendants(graph, by_name[n]) for n in mine))
        needed -= {by_name[n] for n in mine}
        for stage in reversed(list(nx.topological_sort(graph))):  # dependencies first
            if stage not in needed:
                continue
            t = time.perf_counter()
            try:
                repo.stage_cache.restore(stage, pull=True)
            except RunCacheNotFoundError:
                w = wave_index[stage.addressing]
                raise ShardError(
                    f"stage {stage.addressing!r} of wave {w} ({WAVES[w]}) is not in the remote's "
                    f"run-cache; run wave {w} first (python -m squeeze shard run --wave {w})"
                ) from None
            log.restored.append({"stage": stage.addressing,
                                 "seconds": round(time.perf_counter() - t, 3)})
            say(f"worker {worker}: {stage.addressing} restored from the run-cache")
    for name in mine:
        t = time.perf_counter()
        say(f"worker {worker}: {name}")
        output = _dvc(["repro", "--single-item", "--pull", name], root)
        ran = "Running stage" in output
        seconds = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        _dvc(["push", "--run-cache", name], root)
        push = round(time.perf_counter() - t, 3)
        log.push_seconds += push
        log.ran.append({"stage": name, "ran": ran, "seconds": seconds, "push_seconds": push})
    log.push_seconds = round(log.push_seconds, 3)
    return log


def log_json(log: WaveLog) -> str:
    from dataclasses import asdict

    return json.dumps(asdict(log), indent=2)
