"""Stage report: the trade-off report of the params grid: CSV, summary metrics, tables, figures."""
from squeeze import cli, report
from squeeze.config import load_params


def main(args):
    grid = report.Grid.from_params(load_params(args.params))
    result = report.load(grid, args.models, args.logs)
    print(report.write_outputs(result, csv_path=args.out_csv, summary_path=args.out_summary,
                               tables_path=args.out_tables, curves_path=args.out_curves,
                               figures_dir=args.out_figures))


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--models", required=True, help="folder of the per-model metric files")
    p.add_argument("--logs", required=True, help="folder of the per-epoch training logs")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-summary", required=True)
    p.add_argument("--out-tables", required=True)
    p.add_argument("--out-curves", required=True)
    p.add_argument("--out-figures", required=True, help="folder for the PNG figures")
    cli.run(main, p)
