"""The files one stage reads and writes, as one small object: steps take (configs, paths), not a
dozen path keywords."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

# StagePaths field <- the stage's command-line option
OPTIONS = {"data": "data", "out": "out", "metrics": "out_metrics", "log": "out_log",
           "resume": "resume", "base": "base", "sensitivity": "sensitivity",
           "baseline": "baseline"}


@dataclass(frozen=True)
class StagePaths:
    data: Path                        # the prepared dataset (data/prepared/dataset.npz)
    out: Path                         # the stage's model (or folder)
    metrics: Path | None = None       # its metrics JSON
    log: Path | None = None           # its per-epoch CSV
    resume: Path | None = None        # its per-epoch resume checkpoint (not a DVC output)
    base: Path | None = None          # the model it starts from
    sensitivity: Path | None = None   # the sensitivity CSV (structured pruning)
    baseline: Path | None = None      # the unpruned baseline (score.*_norm auto: its own counts)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "StagePaths":
        given = vars(args)
        return cls(**{name: Path(given[option]) for name, option in OPTIONS.items()
                      if given.get(option) is not None})
