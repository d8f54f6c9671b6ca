"""Stage prune_unstructured@<s>-<u>: magnitude pruning of a structured model, then a fine-tune."""
from squeeze import cli
from squeeze.config import FinetuneConfig, UnstructuredConfig, amount_arg, section

PARAMS = ("prune.unstructured.scope", "finetune.unstructured")


def main(args, params):
    from squeeze.steps import unstructured

    print(unstructured.run(amount_arg(args.structured, "prune.structured.amounts"),
                           amount_arg(args.amount, "prune.unstructured.amounts"),
                           UnstructuredConfig.from_params(section(params, "prune.unstructured")),
                           FinetuneConfig.from_params(section(params, "finetune.unstructured"),
                                                   "finetune.unstructured"),
                           args.base, args.data, args.out, args.out_metrics, args.out_log,
                           args.resume))


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--structured", "--amount", "--base", "--data", "--out",
                             "--out-metrics", "--out-log", "--resume"), PARAMS)
