"""`python -m squeeze inspect CHECKPOINT | --resnet18 [--width W]`: counts and scores as JSON.
`python -m squeeze profile NAME [--data ARCHIVE] [--print] [-- DVC EXP RUN ARGS]`: run a profile.
`python -m squeeze recommend --budget B [--score score|score_seed] [--report CSV]`: the best model.
`python -m squeeze export CHECKPOINT --format onnx|torchscript --out FILE [--images N]`: export."""
from __future__ import annotations

import argparse
import json
import sys

from . import profiles


def inspect(args) -> dict:
    from . import checkpoint, measure, models

    if args.resnet18:
        model = models.build(models.ResNetSpec.resnet18(args.width))
        source = f"resnet18(width={args.width}), freshly initialised"
    else:
        model, _ = checkpoint.load_model(args.checkpoint)
        source = str(args.checkpoint)
    return {"model": source, **measure.counts(model), "spec": model.spec.to_dict()}


def workspace_params_warning(path: str = "params.yaml") -> str | None:
    """`dvc exp run -S` edits the workspace's params.yaml, which after an earlier experiment
    still holds that experiment's values: the overrides then apply on top of them."""
    import subprocess

    diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", path], capture_output=True)
    if diff.returncode == 1:
        return (f"warning: {path} differs from HEAD (an earlier experiment's values?); the "
                f"profile's overrides apply on top of it. `git checkout HEAD -- {path}` starts "
                "from the committed settings")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m squeeze")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="params, nonzero params, ops and scores of a model")
    p.add_argument("checkpoint", nargs="?", help="a squeeze model checkpoint (.pt)")
    p.add_argument("--resnet18", action="store_true", help="a fresh ResNet-18 instead")
    p.add_argument("--width", type=int, default=64, help="with --resnet18 (default 64)")
    p = sub.add_parser("profile", help="run the pipeline as `dvc exp run` with a profile's overrides")
    p.add_argument("name", help="a file profiles/NAME.yaml of dotted-key overrides")
    p.add_argument("--data", help="an ImageFolder tree or .tar.gz to use (data.source: folder)")
    p.add_argument("--print", action="store_true", help="print the dvc command, do not run it")
    p = sub.add_parser("recommend", help="the most accurate model under a score budget (JSON)")
    p.add_argument("--budget", required=True, help="the largest score allowed")
    p.add_argument("--score", default="score", help="score (measured, default) or score_seed")
    p.add_argument("--report", default="reports/tradeoff.csv", help="the report's CSV")
    p = sub.add_parser("export", help="a checkpoint to ONNX or TorchScript, checked (JSON)")
    p.add_argument("checkpoint", help="a squeeze model or quantized checkpoint (.pt)")
    p.add_argument("--format", required=True, help="onnx (fp32, fp16) or torchscript (any)")
    p.add_argument("--out", required=True, help="the file to write")
    p.add_argument("--images", type=int, default=256, help="test images of the check (256)")
    p.add_argument("--data", default="data/prepared/dataset.npz", help="the prepared data file")
    argv = list(sys.argv[1:] if argv is None else argv)
    dvc_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    from .errors import SqueezeError
    try:
        if args.command == "recommend":
            from .recommend import RecommendError, read_report, recommend
            try:
                budget = float(args.budget)
            except ValueError:
                raise RecommendError(f"budget {args.budget!r} is not a number") from None
            print(json.dumps(recommend(read_report(args.report), budget, args.score), indent=2))
            return 0
        if args.command == "export":
            from .export import export
            print(json.dumps(export(args.checkpoint, args.format, args.out, args.data,
                                    args.images), indent=2))
            return 0
        if args.command == "inspect":
            if bool(args.checkpoint) == bool(args.resnet18):
                parser.error("inspect takes a CHECKPOINT or --resnet18, not both or neither")
            print(json.dumps(inspect(args), indent=2))
            return 0
        command = profiles.exp_run_command(args.name, args.data, dvc_args)
    except SqueezeError as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 1
    print(" ".join(profiles.shell_quote(c) for c in command), flush=True)
    if args.print:
        return 0
    warning = workspace_params_warning()
    if warning:
        print(warning, file=sys.stderr, flush=True)
    import subprocess
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
