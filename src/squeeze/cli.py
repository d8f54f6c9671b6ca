"""The shared entry point of every stage script: run it, and turn a known failure into one line.

Known failures (bad params, bad data, bad checkpoint, no int8 backend, diverged training) print
`error: <what, which value, what is allowed>` and exit 1 with no traceback. The stage's outputs
(every argument whose name starts with `out`) are removed, so DVC caches nothing from a failed run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .checkpoint import CheckpointError
from .config import ConfigError
from .data import DataError

KNOWN_ERRORS: tuple[type[BaseException], ...] = (ConfigError, DataError, CheckpointError)


def _known_errors() -> tuple[type[BaseException], ...]:
    from .quantize import QuantizationError
    from .train import TrainingDiverged
    return KNOWN_ERRORS + (QuantizationError, TrainingDiverged)


def outputs(args: argparse.Namespace) -> list[Path]:
    return [Path(v) for k, v in vars(args).items() if k.startswith("out") and v]


def run(main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser,
        argv: list[str] | None = None) -> None:
    args = parser.parse_args(argv)
    try:
        main(args)
    except _known_errors() as err:
        for path in outputs(args):
            path.unlink(missing_ok=True)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return p
