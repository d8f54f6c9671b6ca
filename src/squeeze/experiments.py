"""Methods as DVC experiments: each method is a profile under profiles/methods/, stacked on a base
profile (`cpu` by default) and the methods grid (`structured-fp32`), queued as one experiment
`methods-<name>` with `dvc exp run --queue`, run by one `dvc queue start` worker.

A queued experiment runs in a temporary copy of the repository (.dvc/tmp/exps/...) made from the
last commit, so the workspace and its params.yaml are never touched, and its unchanged stages
(the baseline above all) come from the run-cache. A relative `--data` path would point elsewhere
from that copy, so it is made absolute. Every stack is validated before the first is queued.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from . import profiles
from .check import check
from .config import ConfigError
from .errors import SqueezeError

METHODS = "methods"  # profiles/methods/<name>.yaml
GRID = "structured-fp32"  # the methods grid: structured amounts only, fp32
PREFIX = "methods-"  # the experiment of method x is methods-x
RUNNING = ("Queued", "Running")


def names(directory: Path = profiles.PROFILE_DIR) -> list[str]:
    """The methods, `study` (the study's own method) first."""
    found = sorted(p.stem for p in (directory / METHODS).glob("*.yaml"))
    return sorted(found, key=lambda n: n != "study")


def summary(name: str, directory: Path = profiles.PROFILE_DIR) -> str:
    """What a method is: its comment lines joined (the `# Run:` line left out), for `methods list`."""
    lines = (directory / METHODS / f"{name}.yaml").read_text().splitlines()
    text = " ".join(line.lstrip("# ").strip() for line in lines
                    if line.startswith("#") and not line.startswith("# Run:"))
    return text.removeprefix(f"Method {name}: ")


def stack(name: str, base: str) -> list[str]:
    return [base, GRID, f"{METHODS}/{name}"]


def queue_commands(chosen: Sequence[str], base: str, data: str | None,
                   directory: Path = profiles.PROFILE_DIR,
                   params: str | Path = "params.yaml") -> list[list[str]]:
    """One `dvc exp run --queue -n methods-<name> -S ...` per method, every stack validated
    first (a ConfigError names the first bad method or value; nothing is queued)."""
    known = names(directory)
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise ConfigError(f"method {unknown[0]!r} not found in {directory / METHODS}; "
                          f"known: {', '.join(known)}")
    if not chosen:
        raise ConfigError(f"no method named; known: {', '.join(known)}")
    if data is not None:
        data = str(Path(data).resolve())  # the queued copy runs in .dvc/tmp/exps/<dir>
    commands = []
    for name in chosen:
        names_ = stack(name, base)
        check(params, names_, data, directory=directory)
        overrides = profiles.with_data(profiles.stack(names_, directory), data)
        # no -f: for `dvc exp run` it also means "rerun every stage" (no run-cache, no skip)
        commands.append(["dvc", "exp", "run", "--queue", "-n", PREFIX + name,
                         *profiles.set_args(overrides)])
    return commands


def queue_status() -> dict[str, str]:
    """Experiment name -> status of its latest task in `dvc queue status` (Queued, Running,
    Success, Failed)."""
    out = subprocess.run(["dvc", "queue", "status"], capture_output=True, text=True,
                         check=True).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] != "Task" and parts[-1] in (*RUNNING, "Success",
                                                                      "Failed"):
            found[parts[1]] = parts[-1]  # later rows are later tasks: the last one wins
    return found


def wait(experiments: Sequence[str], poll: float = 10.0,
         say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
         status: Callable[[], dict[str, str]] = queue_status) -> dict[str, str]:
    """Block until none of `experiments` is queued or running; their final statuses."""
    last = None
    while True:
        now = status()
        states = {name: now.get(name, "missing") for name in experiments}
        if states != last:
            say("  ".join(f"{name}: {state}" for name, state in states.items()))
            last = states
        if not any(state in RUNNING for state in states.values()):
            return states
        time.sleep(poll)


def run(chosen: Sequence[str], base: str, data: str | None, start: bool = True,
        say: Callable[[str], None] = lambda line: print(line, flush=True)) -> list[str]:
    """Queue the methods (and start one worker): the experiment names. A method run before on
    this commit has its experiment replaced (removed first: DVC refuses a taken name, and its
    -f would also force every stage to rerun)."""
    commands = queue_commands(chosen, base, data)
    for name in chosen:
        subprocess.run(["dvc", "exp", "remove", PREFIX + name], capture_output=True)
    if start:
        commands.append(["dvc", "queue", "start", "-j", "1"])
    for command in commands:
        say(" ".join(profiles.shell_quote(c) for c in command))
        code = subprocess.run(command).returncode
        if code:
            raise SqueezeError(f"`{' '.join(command[:7])} ...` failed (exit {code}); DVC's "
                               "message is above")
    return [PREFIX + name for name in chosen]
