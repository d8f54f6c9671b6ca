"""`python -m squeeze inspect CHECKPOINT | --resnet18 [--width W] | --arch ARCH [--kwargs K]`:
counts and scores (the study's normalisers) as JSON.
`python -m squeeze profile NAME... [--data ARCHIVE] [--print] [-- DVC EXP RUN ARGS]`: run profiles.
`python -m squeeze check [--profile NAME]... [--data ARCHIVE] [-S key=value ...]`: validate first.
`python -m squeeze methods list|run|collect|table [METHOD ...]`: methods as DVC experiments.
`python -m squeeze compare [EXP ...]`: experiments side by side (changed params, headline metrics).
`python -m squeeze recommend --budget B [--score score|score_seed] [--report CSV]`: the best model.
`python -m squeeze export CHECKPOINT --format onnx|torchscript --out FILE [--images N]`: export.
`python -m squeeze shard plan|run|slurm|k8s --workers N ...`: the grid over several workers."""
from __future__ import annotations

import argparse
import json
import os
import sys

from . import profiles


def inspect(args) -> dict:
    from . import checkpoint, measure, models

    if args.resnet18:
        model = models.build(models.ResNetSpec.resnet18(args.width))
        source = f"resnet18(width={args.width}), freshly initialised"
    elif args.arch:
        import yaml

        from .config import ModelConfig
        from .errors import SqueezeError

        try:
            kwargs = yaml.safe_load(args.kwargs) if args.kwargs else {}
        except yaml.YAMLError:
            kwargs = args.kwargs
        try:
            ModelConfig.from_params({"arch": args.arch, "kwargs": kwargs, "width": args.width,
                                     "num_classes": args.num_classes}, "model")
        except SqueezeError as err:  # params.yaml's wording, but the option is what was given
            raise SqueezeError(str(err).replace("params.yaml: model.", "--")) from None
        models.check_arch(args.arch, kwargs, args.num_classes, args.image_size)
        model = models.build(models.spec_for(args.arch, args.width, args.num_classes, kwargs,
                                             args.image_size))
        source = f"{args.arch}({', '.join(f'{k}={v}' for k, v in kwargs.items())}), " \
                 f"freshly initialised, {args.image_size}x{args.image_size} images"
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


def _whole(name: str, text: str | None) -> int:
    from .sharding.shard import ShardError

    try:
        return int(text)
    except (TypeError, ValueError):
        raise ShardError(f"--{name} {text!r} is not a whole number") from None


def shard(args) -> int:
    import subprocess

    from .sharding import launch
    from .sharding.shard import ShardError, log_json, repo_plan, run_wave

    workers = _whole("workers", args.workers)
    if workers < 1:
        raise ShardError(f"--workers {workers} is not a positive whole number")
    if args.action == "run":  # it builds its plan from the repository it opens
        log = run_wave(".", workers, _whole("worker", args.worker), _whole("wave", args.wave),
                       say=lambda line: print(line, file=sys.stderr, flush=True))
        print(log_json(log))
        return 0
    plan = repo_plan(".", workers)
    if args.action == "plan":
        print(json.dumps(plan, indent=2))
        return 0

    def git(*cmd: str) -> str:
        proc = subprocess.run(["git", *cmd], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    repo = args.repo or git("remote", "get-url", "origin")
    if not repo:
        raise ShardError("no --repo given and this clone has no `origin` remote; pass the URL "
                         "every node can clone")
    job = launch.Job(repo=repo, commit=args.commit or git("rev-parse", "HEAD"), workers=workers,
                     setup=args.setup, workdir=args.workdir)
    if args.action == "slurm":
        print(launch.slurm(job, plan, partition=args.partition, time_limit=args.time), end="")
        return 0
    if not args.image:
        raise ShardError("k8s needs --image: a container image with python, git and this "
                         "project's requirements")
    only = None if args.wave is None else _whole("wave", args.wave)
    if only is not None and not 0 <= only < len(plan["waves"]):
        raise ShardError(f"--wave {only} does not exist; allowed: 0..{len(plan['waves']) - 1}")
    print(launch.k8s(job, plan, args.image, secret=args.secret, only=only), end="")
    return 0


def methods(args) -> int:
    from . import experiments
    from .errors import SqueezeError
    from .report import methods as table

    if args.action == "list":
        for name in experiments.names():
            print(f"{name:18} {experiments.summary(name)}")
        return 0
    if args.action == "run":
        started = experiments.run(args.methods, args.base, args.data)
        if not args.wait:
            print("running in the background: `dvc queue status`; when done, "
                  f"`python -m squeeze methods collect {' '.join(args.methods)}`")
            return 0
        states = experiments.wait(started)
        failed = [name for name, state in states.items() if state != "Success"]
        if failed:
            raise SqueezeError(f"experiment {failed[0]} ended {states[failed[0]]}; its output: "
                               f"dvc queue logs {failed[0]}")
    if args.action in ("run", "collect"):
        found = table.collect(".", args.methods or None)
        missing = [n for n in args.methods if n not in found]
        if missing:
            raise SqueezeError(f"no finished experiment {experiments.PREFIX}{missing[0]}; run it "
                               f"with `python -m squeeze methods run {missing[0]} --data ...`")
        table.write_rows(table.merged(table.read_rows(), found))
        print(f"{table.CSV}: rows of {', '.join(found) or 'no method'} from their experiments")
        return 0
    rows = table.read_rows()
    table.draw(rows)
    print(table.markdown(rows))
    print()
    print(table.budgets(rows))
    print(f"\n(figure: {table.FIGURE})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command; a reader that stops early (`| head`) ends it quietly with exit 0."""
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the reader closed the pipe: nothing more to say; stdout to /dev/null so that the
        # interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m squeeze")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="params, nonzero params, ops and scores of a model")
    p.add_argument("checkpoint", nargs="?", help="a squeeze model checkpoint (.pt)")
    p.add_argument("--resnet18", action="store_true", help="a fresh ResNet-18 instead")
    p.add_argument("--width", type=int, default=64, help="with --resnet18 (default 64)")
    p.add_argument("--arch", help="a fresh model.arch instead (torchvision:<name> or "
                   "<package.module>:<function> in nets/)")
    p.add_argument("--kwargs", help="with --arch: its constructor arguments, as model.kwargs "
                   "(YAML: '{width_mult: 0.5}')")
    p.add_argument("--num-classes", type=int, default=10, help="with --arch (default 10)")
    p.add_argument("--image-size", type=int, default=32, help="with --arch (default 32)")
    p = sub.add_parser("profile", help="run the pipeline as `dvc exp run` with a profile's overrides")
    p.add_argument("names", nargs="+", metavar="NAME", help="a file profiles/NAME.yaml of "
                   "dotted-key overrides; several stack in order, a later one winning")
    p.add_argument("--data", help="an ImageFolder tree or .tar.gz to use (data.source: folder)")
    p.add_argument("--print", action="store_true", help="print the dvc command, do not run it")
    p = sub.add_parser("check", help="validate the params a run would use, touching nothing")
    p.add_argument("--profile", action="append", help="apply profiles/NAME.yaml's overrides "
                   "first (repeat to stack several, in order)")
    p.add_argument("--data", help="as profile's --data (data.source: folder, data.path)")
    p.add_argument("-S", "--set-param", dest="sets", action="append", default=[],
                   metavar="KEY=VALUE", help="an override as `dvc exp run -S` takes it")
    p.add_argument("--params", default="params.yaml", help="the params file (params.yaml)")
    p = sub.add_parser("methods", help="pruning methods as DVC experiments, and their comparison")
    p.add_argument("action", choices=("list", "run", "collect", "table"),
                   help="list: the methods; run: queue each as experiment methods-NAME and start "
                   "one worker; collect: their rows from the experiments into reports/methods.csv; "
                   "table: print the tables, draw reports/methods.png")
    p.add_argument("methods", nargs="*", metavar="METHOD", help="run/collect: method names "
                   "(profiles/methods/METHOD.yaml); collect: default every experiment found")
    p.add_argument("--base", default="cpu", help="run: the profile under the method (cpu)")
    p.add_argument("--data", help="run: as profile's --data (made absolute for the queue)")
    p.add_argument("--wait", action="store_true", help="run: wait for the experiments, then "
                   "collect their rows")
    p = sub.add_parser("compare", help="experiments side by side: changed params, headline metrics")
    p.add_argument("experiments", nargs="*", help="experiment names (default: all with results)")
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
    p = sub.add_parser("shard", help="the grid in waves over N workers (plan, run, launchers)")
    p.add_argument("action", choices=("plan", "run", "slurm", "k8s"))
    p.add_argument("--workers", required=True, help="how many workers share each wave")
    p.add_argument("--worker", help="run: this worker's number, 0..N-1")
    p.add_argument("--wave", help="run: the wave, 0..4; k8s: only this wave's Job")
    p.add_argument("--repo", help="slurm/k8s: what each task clones (default: origin's URL)")
    p.add_argument("--commit", help="slurm/k8s: the revision each task runs (default: HEAD)")
    p.add_argument("--setup", default="", help="slurm/k8s: shell each task runs first "
                   "(activate an environment, export remote credentials)")
    p.add_argument("--workdir", default="$HOME/squeeze-work", help="slurm/k8s: where tasks clone")
    p.add_argument("--partition", default="", help="slurm: the partition")
    p.add_argument("--time", default="24:00:00", help="slurm: each task's time limit")
    p.add_argument("--image", help="k8s: the container image (python, git, this project's "
                   "requirements)")
    p.add_argument("--secret", default="", help="k8s: a Secret whose keys become env vars "
                   "(remote credentials)")
    argv = list(sys.argv[1:] if argv is None else argv)
    dvc_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    from .errors import SqueezeError
    try:
        if args.command == "recommend":
            from .deploy.recommend import RecommendError, read_report, recommend
            try:
                budget = float(args.budget)
            except ValueError:
                raise RecommendError(f"budget {args.budget!r} is not a number") from None
            print(json.dumps(recommend(read_report(args.report), budget, args.score), indent=2))
            return 0
        if args.command == "shard":
            return shard(args)
        if args.command == "export":
            from .deploy.export import export
            print(json.dumps(export(args.checkpoint, args.format, args.out, args.data,
                                    args.images), indent=2))
            return 0
        if args.command == "compare":
            from .report.compare import dvc_experiments, rows_of, table
            print(table(rows_of(dvc_experiments()), args.experiments))
            return 0
        if args.command == "check":
            from .check import check
            check(args.params, args.profile, args.data, args.sets)
            print("ok: params valid" + (f" with profile {' + '.join(args.profile)}"
                                        if args.profile else "")
                  + (f" and {len(args.sets)} override(s)" if args.sets else ""))
            return 0
        if args.command == "inspect":
            if sum(map(bool, (args.checkpoint, args.resnet18, args.arch))) != 1:
                parser.error("inspect takes one of CHECKPOINT, --resnet18 or --arch ARCH")
            print(json.dumps(inspect(args), indent=2))
            return 0
        if args.command == "methods":
            return methods(args)
        command = profiles.exp_run_command(args.names, args.data, dvc_args)
        if not args.print:  # the params this run would use, before DVC writes them anywhere
            from .check import check, sets_in
            check("params.yaml", args.names, args.data, sets_in(dvc_args))
    except SqueezeError as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 1
    print(" ".join(profiles.shell_quote(c) for c in command), flush=True)
    if args.print:
        return 0
    warning = workspace_params_warning()
    if warning:
        print(warning, file=sys.stderr, flush=True)
    from . import exprun
    return exprun.run(command)


if __name__ == "__main__":
    sys.exit(main())
