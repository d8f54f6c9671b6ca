"""The shared entry point of every stage script: run it, and turn a known failure into one line.

Known failures (SqueezeError: bad params, bad data, bad checkpoint, no int8 backend, diverged
training, a missing report input) print `error: <what, which value, what is allowed>` and exit 1
with no traceback. The stage's outputs
(every argument whose name starts with `out`) are removed, so DVC caches nothing from a failed run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .errors import SqueezeError


def outputs(args: argparse.Namespace) -> list[Path]:
    return [Path(v) for k, v in vars(args).items() if k.startswith("out") and v]


def run(main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser,
        argv: list[str] | None = None) -> None:
    args = parser.parse_args(argv)
    try:
        main(args)
    except SqueezeError as err:
        for path in outputs(args):
            # a folder output (the report's figures) stays: each file in it is written atomically
            if not path.is_dir():
                path.unlink(missing_ok=True)
        # one line even where a message quotes a multi-line one (tarfile lists each method tried)
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        sys.exit(1)


def parser(description: str, *required: str) -> argparse.ArgumentParser:
    """A stage's parser: --params, and each of `required` (e.g. "--data") as a required option."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    for option in required:
        p.add_argument(option, required=True)
    return p
