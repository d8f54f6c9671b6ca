"""Stage qat_mixed@<s>-<u>-<b>: per-layer bits for one grid model under score budget b (a
fraction of its int8 score), chosen from each layer's measured sensitivity, then the
quantization-aware fine-tune of the low-bit types; type wmix<b>."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the code its deps hash
from squeeze import cli  # noqa: E402
from squeeze.config import MIXED_PREFIX, amount_arg, mix_budget_arg
from squeeze.paths import StagePaths

PARAMS = ("quantize.qat", "quantize.mixed", "finetune.qat", "score")


def configs(args, params) -> dict:
    mix_budget_arg(args.budget)
    return {"structured": amount_arg(args.structured, "prune.structured.amounts"),
            "unstructured": amount_arg(args.unstructured, "prune.unstructured.amounts"),
            "quant": f"{MIXED_PREFIX}{args.budget}",  # as DVC spells it: the file names match
            "qat_cfg": params.quantize.qat,
            "finetune_cfg": params.finetune.qat,
            "mixed_cfg": params.quantize.mixed,
            "score_cfg": params.score}


def main(args, params):
    from squeeze.steps import qat

    print(qat.run(**configs(args, params), paths=StagePaths.from_args(args)))


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--structured", "--unstructured", "--budget", "--base",
                             "--data", "--out", "--out-metrics", "--out-log", "--resume",
                             "--baseline"), PARAMS)
