"""Stage export: the most accurate model of the report within export.budget (python -m squeeze
recommend), exported to models/export/ and checked against its checkpoint (python -m squeeze
export); models/export/model.json says which model, its accuracy and score, and the check."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the code its deps hash
from squeeze import cli  # noqa: E402

PARAMS = ("export",)


def main(args, params):
    from squeeze.steps import exported

    print(exported.run(params.export, args.report,
                       args.data, args.out))


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--report", "--data", "--out"), PARAMS)
