"""Stage prune_structured@<s>: L1 filter pruning of the baseline, then fine-tune."""
from squeeze import cli, steps
from squeeze.config import StructuredConfig, TrainConfig, amount_arg, grid, load_params, section


def main(args):
    params = load_params(args.params)
    structured, _, _ = grid(params)
    amount = amount_arg(args.amount, structured, "prune.structured.amounts")
    prune_cfg = StructuredConfig.from_params(section(params, "prune.structured"))
    finetune_cfg = TrainConfig.from_params(section(params, "finetune.structured"), "finetune.structured")
    print(steps.run_prune_structured(amount, prune_cfg, finetune_cfg, args.base, args.data,
                                     args.out, args.out_log, args.resume))


if __name__ == "__main__":
    p = cli.parser(__doc__, "--amount", "--base", "--data", "--out", "--out-log", "--resume")
    cli.run(main, p)
