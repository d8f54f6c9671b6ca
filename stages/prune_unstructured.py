"""Stage prune_unstructured@<s>-<u>: magnitude pruning of a structured model, then a fine-tune."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the code its deps hash
from squeeze import cli  # noqa: E402
from squeeze.config import amount_arg
from squeeze.paths import StagePaths

PARAMS = ("prune.unstructured.scope", "finetune.unstructured")


def configs(args, params) -> dict:
    return {"structured": amount_arg(args.structured, "prune.structured.amounts"),
            "amount": amount_arg(args.amount, "prune.unstructured.amounts"),
            "prune_cfg": params.prune.unstructured,
            "finetune_cfg": params.finetune.unstructured}


def main(args, params):
    from squeeze.steps import unstructured

    print(unstructured.run(**configs(args, params), paths=StagePaths.from_args(args)))


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--structured", "--amount", "--base", "--data", "--out",
                             "--out-metrics", "--out-log", "--resume"), PARAMS)
