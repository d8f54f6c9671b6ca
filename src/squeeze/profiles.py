"""Profiles: named sets of params overrides (profiles/NAME.yaml, dotted keys) applied with
`dvc exp run -S key=value ...`, so the committed params.yaml keeps the study's settings while a
quick or CPU run is one command, and shows up in `dvc exp show` like any experiment."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence

import yaml

from .config import ConfigError

PROFILE_DIR = Path("profiles")


def known(directory: Path = PROFILE_DIR) -> list[str]:
    """Every profile name under `directory`: `quick`, `cpu`, `methods/recal`, ..."""
    return sorted(p.relative_to(directory).with_suffix("").as_posix()
                  for p in directory.rglob("*.yaml"))


def load(name: str, directory: Path = PROFILE_DIR) -> dict:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"profile {name!r} not found ({path}); known profiles: "
                          f"{', '.join(known(directory))}")
    overrides = yaml.safe_load(path.read_text()) or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: expected a mapping of dotted keys to values")
    return overrides


def stack(names: str | Sequence[str], directory: Path = PROFILE_DIR) -> dict:
    """The overrides of several profiles applied in order, a later one winning on a shared key
    (`cpu`, then `structured-fp32`, then `methods/recal`)."""
    merged: dict = {}
    for name in [names] if isinstance(names, str) else names:
        merged.update(load(name, directory))
    return merged


def with_data(overrides: dict, data: str | None) -> dict:
    if data is None:
        return overrides
    if not Path(data).exists():
        raise ConfigError(f"--data {data} does not exist; expected an ImageFolder tree or .tar.gz")
    return {**overrides, "data.source": "folder", "data.path": str(data)}


def set_pairs(overrides: dict) -> list[tuple[str, str]]:
    """(key, value) pairs, values in flow-style YAML (which DVC's override grammar reads)."""
    pairs = []
    for key, value in overrides.items():
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        if text.endswith("\n...") or text.endswith("..."):
            text = text.rsplit("\n", 1)[0].strip()
        pairs.append((key, text))
    return pairs


def set_args(overrides: dict) -> list[str]:
    """`-S key=value` arguments for `dvc exp run`."""
    return [arg for key, text in set_pairs(overrides) for arg in ("-S", f"{key}={text}")]


OUTSIDE = ("--queue", "--temp")  # dvc exp run flags that run the experiment in .dvc/tmp/exps/<dir>


def exp_run_command(names: str | Sequence[str], data: str | None = None,
                    extra: list[str] | None = None) -> list[str]:
    """`dvc exp run` with the profiles' overrides. --data stays as given (relative to the
    repository, so the run-cache entries hold on another clone) unless the experiment runs in a
    copy elsewhere (--queue, --temp), where only an absolute path still names the data."""
    if data is not None and set(OUTSIDE) & set(extra or []):
        data = str(Path(data).resolve())
    return ["dvc", "exp", "run", *set_args(with_data(stack(names), data)), *(extra or [])]


def shell_quote(arg: str) -> str:
    return shlex.quote(arg)
