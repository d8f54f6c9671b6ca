"""Stage prune_unstructured@<s>-<u>: magnitude pruning of a structured model, then a fine-tune."""
from squeeze import cli
from squeeze.config import amount_arg

PARAMS = ("prune.unstructured.scope", "finetune.unstructured")


def configs(args, params) -> dict:
    return {"structured": amount_arg(args.structured, "prune.structured.amounts"),
            "amount": amount_arg(args.amount, "prune.unstructured.amounts"),
            "prune_cfg": params.prune.unstructured,
            "finetune_cfg": params.finetune.unstructured}


def main(args, params):
    from squeeze.steps import unstructured

    print(unstructured.run(**configs(args, params), base=args.base, data_path=args.data,
                           out=args.out, out_metrics=args.out_metrics, log_path=args.out_log,
                           resume_path=args.resume))


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--structured", "--amount", "--base", "--data", "--out",
                             "--out-metrics", "--out-log", "--resume"), PARAMS)
