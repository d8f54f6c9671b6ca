"""The shared entry point of every stage script: check the whole params file, hand the stage only
the params it declares, and turn a known failure into one line.

Order of work: parse arguments, load params.yaml, parse and validate *all* of it into one typed
Params (config.Params.parse, no torch and no data touched yet), then call the stage's main with
`Params.only(PARAMS)`: the keys the stage declares in dvc.yaml, every other setting Hidden, so a
read of an undeclared key fails in tests instead of making an output depend on a param DVC does not
track (tests/unit/test_dvc_contract.py holds each script's PARAMS equal to its dvc.yaml `params`).

Known failures (SqueezeError: bad params, bad data, bad checkpoint, no int8 backend, diverged
training, a missing report input) print `error: <what, which value, what is allowed>` and exit 1
with no traceback.

Outputs (every argument whose name starts with `out`) are staged: the stage writes each under a
hidden temporary name beside it (`.partial-<name>`, which .dvcignore hides from DVC), and only
when main returns are they renamed into place, together. A failure of any kind, a segfault or a
SIGKILL included, therefore leaves no declared output behind for DVC to cache (an earlier run's
outputs are removed first, as `dvc repro` does); the temporary names a killed run leaves are
removed when the stage next starts.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Sequence

from .config import Params, load_params, validate
from .errors import SqueezeError


PARTIAL = ".partial-"


def partial(path: Path) -> Path:
    return path.with_name(PARTIAL + path.name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def stage_outputs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """Point every out* argument at its temporary name; returns (temporary, final) pairs. An
    earlier run's output there goes first (as `dvc repro` removes it), and so does a killed
    run's temporary: whatever happens next, no stale or partial output is left to be cached."""
    pairs = []
    for key, value in vars(args).items():
        if key.startswith("out") and value:
            final = Path(value)
            tmp = partial(final)
            _remove(tmp)
            _remove(final)
            final.parent.mkdir(parents=True, exist_ok=True)
            setattr(args, key, str(tmp))
            pairs.append((tmp, final))
    return pairs


def commit_outputs(pairs: list[tuple[Path, Path]]) -> None:
    """Every staged output into place (a folder replaces the folder there)."""
    for tmp, final in pairs:
        if not tmp.exists():
            continue  # an output the stage had nothing to write for
        if tmp.is_dir():
            _remove(final)
        os.replace(tmp, final)


def declared(templates: Sequence[str], args: argparse.Namespace) -> list[str]:
    """The stage's param keys, `{name}` filled from its arguments (quantize.{quant} -> quantize.int8)."""
    return [t.format(**vars(args)) for t in templates]


def run(main: Callable[[argparse.Namespace, Params], object], parser: argparse.ArgumentParser,
        params: Sequence[str], argv: list[str] | None = None) -> None:
    """Run a stage: main(args, the declared params) after the whole params file is validated."""
    args = parser.parse_args(argv)
    pairs = stage_outputs(args)
    try:
        main(args, validate(load_params(args.params)).only(declared(params, args)))
        commit_outputs(pairs)
    except SqueezeError as err:
        # one line even where a message quotes a multi-line one (tarfile lists each method tried)
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        sys.exit(1)
    finally:
        for tmp, final in pairs:
            _remove(tmp)  # whatever a failed stage had written; after success nothing is left


def parser(description: str, *required: str) -> argparse.ArgumentParser:
    """A stage's parser: --params, and each of `required` (e.g. "--data") as a required option."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    for option in required:
        p.add_argument(option, required=True)
    return p
