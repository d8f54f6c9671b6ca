"""Stage quantize@<s>-<u>-<q>: post-training quantization of one model, and its evaluation."""
from squeeze import cli, steps
from squeeze.config import (EvaluateConfig, Int8Config, amount_arg, grid, load_params, quant_arg,
                            section)


def main(args):
    params = load_params(args.params)
    structured_amounts, unstructured_amounts, quant_types = grid(params)
    structured = amount_arg(args.structured, structured_amounts, "prune.structured.amounts")
    unstructured = amount_arg(args.unstructured, unstructured_amounts, "prune.unstructured.amounts")
    quant = quant_arg(args.quant, quant_types)
    int8_cfg = Int8Config.from_params(section(params, "quantize.int8"))
    eval_cfg = EvaluateConfig.from_params(section(params, "evaluate"))
    print(steps.run_quantize_evaluate(structured, unstructured, quant, int8_cfg, eval_cfg,
                                      args.base, args.data, args.out, args.out_metrics))


if __name__ == "__main__":
    p = cli.parser(__doc__, "--structured", "--unstructured", "--quant", "--base", "--data",
                   "--out", "--out-metrics")
    cli.run(main, p)
