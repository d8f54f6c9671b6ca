"""Stage prepare: data source -> data/prepared/dataset.npz (uint8 arrays, decoded once)."""
from squeeze import cli, steps
from squeeze.config import DataConfig, load_params, section


def main(args):
    cfg = DataConfig.from_params(section(load_params(args.params), "data"))
    print(steps.run_prepare(cfg, args.out, args.out_summary))


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--out-summary", required=True)
    cli.run(main, p)
