"""Stage report: the trade-off report of the params grid: CSV, summary, headline metrics, tables,
figures."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the code its deps hash
from squeeze import cli  # noqa: E402

# the grid, and every setting tradeoff.md's "Run" table describes or matches a profile on
PARAMS = ("data", "model", "train", "finetune", "prune", "quantize", "score", "evaluate",
          "sensitivity")


def main(args, params):
    from squeeze.report import figures, provenance, tradeoff
    from squeeze.config import ARCH_DEFAULT
    from squeeze.fsutil import read_json
    from dataclasses import replace

    grid = params.grid
    tradeoff.require_files([args.prepared])
    prepared = read_json(args.prepared)
    result = tradeoff.load(grid, args.metrics, prepared["test_images"])
    if params.model.arch != ARCH_DEFAULT:
        result = replace(result, network=params.model.arch)
    settings = provenance.describe(params, prepared, result.rows, result.curves,
                                   profiles_dir=args.profiles)
    summary = tradeoff.write_outputs(result, csv_path=args.out_csv, summary_path=args.out_summary,
                               tables_path=args.out_tables, curves_path=args.out_curves,
                               settings=settings, metrics_path=args.out_metrics)
    print(f"report: {summary['models']} models, {summary['pareto_count']} on the Pareto front "
          f"({', '.join(summary['pareto'])}); tables in {args.out_tables}")
    figures.write_figures(result, args.out_figures)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--metrics", required=True, help="folder of the per-stage metrics and logs")
    p.add_argument("--prepared", required=True, help="the prepare stage's summary (image counts)")
    p.add_argument("--profiles", default="profiles", help="folder of profiles the params may match")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-summary", required=True)
    p.add_argument("--out-metrics", required=True, help="the headline numbers dvc exp show compares")
    p.add_argument("--out-tables", required=True)
    p.add_argument("--out-curves", required=True)
    p.add_argument("--out-figures", required=True, help="folder for the PNG figures")
    cli.run(main, p, PARAMS)
