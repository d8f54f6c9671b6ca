"""Stage train: the baseline ResNet-18, trained with the study's recipe."""
from squeeze import cli

PARAMS = ("model", "train")


def configs(args, params) -> dict:
    return {"model_cfg": params.model, "train_cfg": params.train}


def main(args, params):
    from squeeze.steps import baseline

    print(baseline.run(**configs(args, params), data_path=args.data, out=args.out,
                       out_metrics=args.out_metrics, log_path=args.out_log,
                       resume_path=args.resume))


if __name__ == "__main__":
    p = cli.parser(__doc__, "--data", "--out", "--out-metrics", "--out-log")
    p.add_argument("--resume", required=True, help="per-epoch resume checkpoint (not a DVC output)")
    cli.run(main, p, PARAMS)
