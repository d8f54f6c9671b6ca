"""The shared entry point of every stage script: check the whole params file, hand the stage only
the params it declares, and turn a known failure into one line.

Order of work: parse arguments, load params.yaml, validate *all* of it (config.validate, no torch
and no data touched yet), then call the stage's main with `restrict(params, PARAMS)`: the keys the
stage declares in dvc.yaml, nothing else, so a read of an undeclared key fails in tests instead of
making an output depend on a param DVC does not track (tests/test_dvc_contract.py holds each
script's PARAMS equal to its dvc.yaml `params`).

Known failures (SqueezeError: bad params, bad data, bad checkpoint, no int8 backend, diverged
training, a missing report input) print `error: <what, which value, what is allowed>` and exit 1
with no traceback. The stage's outputs (every argument whose name starts with `out`) are removed,
so DVC caches nothing from a failed run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from .config import load_params, restrict, validate
from .errors import SqueezeError


def outputs(args: argparse.Namespace) -> list[Path]:
    return [Path(v) for k, v in vars(args).items() if k.startswith("out") and v]


def declared(templates: Sequence[str], args: argparse.Namespace) -> list[str]:
    """The stage's param keys, `{name}` filled from its arguments (quantize.{quant} -> quantize.int8)."""
    return [t.format(**vars(args)) for t in templates]


def run(main: Callable[[argparse.Namespace, dict], object], parser: argparse.ArgumentParser,
        params: Sequence[str], argv: list[str] | None = None) -> None:
    """Run a stage: main(args, the declared params) after the whole params file is validated."""
    args = parser.parse_args(argv)
    try:
        all_params = load_params(args.params)
        validate(all_params)
        main(args, restrict(all_params, declared(params, args)))
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
