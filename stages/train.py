"""Stage train: the baseline ResNet-18, trained with the study's recipe."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the code its deps hash
from squeeze import cli  # noqa: E402
from squeeze.paths import StagePaths

PARAMS = ("model", "train")


def configs(args, params) -> dict:
    return {"model_cfg": params.model, "train_cfg": params.train}


def main(args, params):
    from squeeze.steps import baseline

    print(baseline.run(**configs(args, params), paths=StagePaths.from_args(args)))


if __name__ == "__main__":
    p = cli.parser(__doc__, "--data", "--out", "--out-metrics", "--out-log")
    p.add_argument("--resume", required=True, help="per-epoch resume checkpoint (not a DVC output)")
    cli.run(main, p, PARAMS)
