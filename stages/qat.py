"""Stage qat@<s>-<u>-<wXaY>: quantization-aware fine-tuning of one grid model to a low-bit type."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the code its deps hash
from squeeze import cli  # noqa: E402
from squeeze.config import amount_arg, low_bit_arg
from squeeze.paths import StagePaths

PARAMS = ("quantize.qat", "finetune.qat", "score")


def configs(args, params) -> dict:
    return {"structured": amount_arg(args.structured, "prune.structured.amounts"),
            "unstructured": amount_arg(args.unstructured, "prune.unstructured.amounts"),
            "quant": low_bit_arg(args.quant),
            "qat_cfg": params.quantize.qat,
            "finetune_cfg": params.finetune.qat,
            "score_cfg": params.score}


def main(args, params):
    from squeeze.steps import qat

    print(qat.run(**configs(args, params), paths=StagePaths.from_args(args)))


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--structured", "--unstructured", "--quant", "--base",
                             "--data", "--out", "--out-metrics", "--out-log", "--resume",
                             "--baseline"), PARAMS)
