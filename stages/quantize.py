"""Stage quantize@<s>-<u>-<q>: post-training quantization of one model, and its measurement."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the code its deps hash
from squeeze import cli  # noqa: E402
from squeeze.config import amount_arg, quant_arg
from squeeze.paths import StagePaths

PARAMS = ("quantize.{quant}", "evaluate", "score")  # {quant}: its type; fp32 and fp16 hold {}


def configs(args, params) -> dict:
    quant = quant_arg(args.quant)
    return {"structured": amount_arg(args.structured, "prune.structured.amounts"),
            "unstructured": amount_arg(args.unstructured, "prune.unstructured.amounts"),
            "quant": quant,
            "int8_cfg": params.quantize.int8 if quant == "int8" else None,
            "eval_cfg": params.evaluate,
            "score_cfg": params.score}


def main(args, params):
    from squeeze.steps import quantized

    print(quantized.run(**configs(args, params), paths=StagePaths.from_args(args)))


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--structured", "--unstructured", "--quant", "--base",
                             "--data", "--out", "--out-metrics", "--baseline"), PARAMS)
