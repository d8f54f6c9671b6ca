"""Stage prune_structured@<s>: filter pruning of the baseline at amount s, then a fine-tune."""
from squeeze import cli
from squeeze.config import FinetuneConfig, StructuredConfig, amount_arg, section

PARAMS = ("prune.structured.scope", "prune.structured.criterion", "finetune.structured")


def main(args, params):
    from squeeze.steps import structured

    amount = amount_arg(args.amount, "prune.structured.amounts")
    print(structured.run(amount, StructuredConfig.from_params(section(params, "prune.structured")),
                         FinetuneConfig.from_params(section(params, "finetune.structured"),
                                                 "finetune.structured"),
                         args.base, args.data, args.out, args.out_metrics, args.out_log,
                         args.resume))


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--amount", "--base", "--data", "--out", "--out-metrics",
                             "--out-log", "--resume"), PARAMS)
