"""Stage train: the baseline ResNet-18, trained with the study's recipe."""
from squeeze import cli
from squeeze.config import ModelConfig, TrainConfig, section

PARAMS = ("model", "train")


def main(args, params):
    from squeeze.steps import baseline

    print(baseline.run(ModelConfig.from_params(section(params, "model")),
                       TrainConfig.from_params(section(params, "train"), "train"),
                       args.data, args.out, args.out_metrics, args.out_log, args.resume))


if __name__ == "__main__":
    p = cli.parser(__doc__, "--data", "--out", "--out-metrics", "--out-log")
    p.add_argument("--resume", required=True, help="per-epoch resume checkpoint (not a DVC output)")
    cli.run(main, p, PARAMS)
