"""Stage quantize@<s>-<u>-<q>: post-training quantization of one model, and its measurement."""
from squeeze import cli
from squeeze.config import EvaluateConfig, Int8Config, amount_arg, quant_arg, section

PARAMS = ("quantize.{quant}", "evaluate")  # {quant}: this stage's type; fp32 and fp16 hold {}


def main(args, params):
    from squeeze.steps import quantized

    quant = quant_arg(args.quant)
    int8_cfg = Int8Config.from_params(section(params, "quantize.int8")) if quant == "int8" else None
    print(quantized.run(amount_arg(args.structured, "prune.structured.amounts"),
                        amount_arg(args.unstructured, "prune.unstructured.amounts"), quant,
                        int8_cfg, EvaluateConfig.from_params(section(params, "evaluate")),
                        args.base, args.data, args.out, args.out_metrics))


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--structured", "--unstructured", "--quant", "--base",
                             "--data", "--out", "--out-metrics"), PARAMS)
