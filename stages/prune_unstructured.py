"""Stage prune_unstructured@<s>-<u>: magnitude pruning of a structured model, then fine-tune."""
from squeeze import cli, steps
from squeeze.config import UnstructuredConfig, TrainConfig, amount_arg, grid, load_params, section


def main(args):
    params = load_params(args.params)
    structured_amounts, unstructured_amounts, _ = grid(params)
    structured = amount_arg(args.structured, structured_amounts, "prune.structured.amounts")
    amount = amount_arg(args.amount, unstructured_amounts, "prune.unstructured.amounts")
    prune_cfg = UnstructuredConfig.from_params(section(params, "prune.unstructured"))
    finetune_cfg = TrainConfig.from_params(section(params, "finetune.unstructured"),
                                           "finetune.unstructured")
    print(steps.run_prune_unstructured(structured, amount, prune_cfg, finetune_cfg, args.base,
                                       args.data, args.out, args.out_log, args.resume))


if __name__ == "__main__":
    p = cli.parser(__doc__, "--structured", "--amount", "--base", "--data", "--out", "--out-log",
                   "--resume")
    cli.run(main, p)
