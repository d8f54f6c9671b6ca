"""Stage sensitivity: each filter group of the baseline pruned alone at each amount, no fine-tune
(Li et al. 2017, Figure 2); accuracy on held-out training images -> a CSV the report draws and
prune_structured reads when prune.structured.spare_drop > 0."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the code its deps hash
from squeeze import cli  # noqa: E402
from squeeze.paths import StagePaths

PARAMS = ("sensitivity", "prune.structured.criterion")


def configs(args, params) -> dict:
    return {"cfg": params.sensitivity, "criterion": params.prune.structured.criterion}


def main(args, params):
    from squeeze.steps import sensitive

    rows = sensitive.run(**configs(args, params), paths=StagePaths.from_args(args))
    print(f"{len(rows)} measurements written to {args.out}")


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--base", "--data", "--out"), PARAMS)
