"""Stage prepare: data source -> data/prepared/dataset.npz (uint8 arrays, decoded once)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the code its deps hash
from squeeze import cli  # noqa: E402

PARAMS = ("data",)


def configs(args, params) -> dict:
    return {"cfg": params.data}


def main(args, params):
    from squeeze.data import prepare
    from squeeze.fsutil import write_json

    summary = prepare(configs(args, params)["cfg"], args.out)
    write_json(args.out_summary, summary)
    print(summary)


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--out", "--out-summary"), PARAMS)
