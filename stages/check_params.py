"""Stage check_params: the whole params.yaml validated whenever the file changes.

Every stage validates the whole file before its work (cli.run), but a stage runs only when its
own params, code or inputs changed: a misspelt section (`evalute:` for `evaluate:`) changes no
stage's params, so without this stage `dvc repro` would say "up to date" and `dvc exp run` would
record an experiment in which the setting silently did nothing. This stage depends on the file
itself, so any edit of params.yaml runs it (well under a second) and a bad file stops the run.
A model.arch other than the study's is built here once on the CPU (a few seconds), so an unknown
torchvision name or a broken factory stops the run before the data is prepared.
Its one output, a constant line, exists so that DVC's run-cache records the check (a stage
without outputs is never restored from it, so a fresh clone would rerun it)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the code its deps hash
from squeeze import cli  # noqa: E402

PARAMS = ("model", "data.image_size")  # the network is built once (seconds) when not the study's


def main(args, params):
    from squeeze.config import ARCH_DEFAULT
    from squeeze.fsutil import write_text

    if params.model.arch != ARCH_DEFAULT:  # an unknown name fails here, before prepare
        from squeeze import models

        models.check_arch(params.model.arch, params.model.kwargs, params.model.num_classes,
                          params.data.image_size)

    write_text(args.out, "valid\n")  # constant: nothing downstream may depend on which params
    print(f"{args.params}: valid")


if __name__ == "__main__":
    cli.run(main, cli.parser(__doc__, "--out"), PARAMS)
