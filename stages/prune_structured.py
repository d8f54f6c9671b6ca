"""Stage prune_structured@<s>: filter pruning of the baseline at amount s, then a fine-tune."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the code its deps hash
from squeeze import cli  # noqa: E402
from squeeze.config import amount_arg
from squeeze.paths import StagePaths

PARAMS = ("prune.structured.scope", "prune.structured.criterion", "prune.structured.layers",
          "prune.structured.rounds", "prune.structured.target", "prune.structured.spare_drop",
          "prune.structured.round_to", "prune.structured.max_layer_amount",
          "prune.structured.residual_scale", "finetune.structured")


def configs(args, params) -> dict:
    return {"amount": params.prune.structured.check_amount(
                amount_arg(args.amount, "prune.structured.amounts")),
            "prune_cfg": params.prune.structured,
            "finetune_cfg": params.finetune.structured}


def main(args, params):
    from squeeze.steps import structured

    print(structured.run(**configs(args, params), paths=StagePaths.from_args(args)))


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--amount", "--base", "--data", "--out", "--out-metrics",
                             "--out-log", "--resume", "--sensitivity"), PARAMS)
