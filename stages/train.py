"""Stage train: the baseline ResNet-18, trained with the study's recipe (params: model, train)."""
from squeeze import cli, steps
from squeeze.config import ModelConfig, TrainConfig, load_params, section


def main(args):
    params = load_params(args.params)
    model_cfg = ModelConfig.from_params(section(params, "model"))
    train_cfg = TrainConfig.from_params(section(params, "train"), "train")
    print(steps.run_train(model_cfg, train_cfg, args.data, args.out, args.out_log, args.resume))


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--out-log", required=True)
    p.add_argument("--resume", required=True, help="per-epoch resume checkpoint (not a DVC output)")
    cli.run(main, p)
