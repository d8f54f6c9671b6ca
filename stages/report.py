"""Stage report: the trade-off report of the params grid: CSV, summary metrics, tables, figures."""
from squeeze import cli, provenance, report
from squeeze.config import load_params
from squeeze.fsutil import read_json


def main(args):
    params = load_params(args.params)
    grid = report.Grid.from_params(params)
    report.require_files([args.prepared])
    result = report.load(grid, args.models, args.logs)
    settings = provenance.describe(params, read_json(args.prepared), result.rows, result.curves,
                                   profiles_dir=args.profiles)
    print(report.write_outputs(result, csv_path=args.out_csv, summary_path=args.out_summary,
                               tables_path=args.out_tables, curves_path=args.out_curves,
                               figures_dir=args.out_figures, settings=settings))


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--models", required=True, help="folder of the per-model metric files")
    p.add_argument("--logs", required=True, help="folder of the per-epoch training logs")
    p.add_argument("--prepared", required=True, help="the prepare stage's summary (image counts)")
    p.add_argument("--profiles", default="profiles", help="folder of profiles the params may match")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-summary", required=True)
    p.add_argument("--out-tables", required=True)
    p.add_argument("--out-curves", required=True)
    p.add_argument("--out-figures", required=True, help="folder for the PNG figures")
    cli.run(main, p)
