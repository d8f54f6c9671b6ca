"""Write an HTML template that makes `dvc plots show` and `dvc plots diff` pages work offline.

DVC's pages load vega, vega-lite and vega-embed from a CDN. This fetches the same versions once
with `npm pack` and writes a template with the three scripts inlined (about 1 MB, git-ignored):

    python tools/offline_plots.py                      # -> local/dvc-plots-offline.html
    dvc plots show --html-template local/dvc-plots-offline.html
    dvc config --local plots.html_template ../local/dvc-plots-offline.html   # as the default

(`plots.html_template` is relative to .dvc/.) Without npm, read the PNGs in reports/figures/.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from squeeze.fsutil import write_text

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>DVC Plot (offline)</title>
{scripts}
    <style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def cdn_packages() -> list[tuple[str, str]]:
    """(name, version) of the scripts the installed DVC would load from its CDN."""
    from dvc_render.vega import VegaRenderer

    return re.findall(r"npm/(vega[\w-]*)@([\d.]+)", VegaRenderer.SCRIPTS)


def fetch_script(name: str, version: str, workdir: Path) -> str:
    packed = subprocess.run(["npm", "pack", f"{name}@{version}", "--json", "--pack-destination",
                             str(workdir)], check=True, capture_output=True, text=True)
    tarball = workdir / json.loads(packed.stdout)[0]["filename"]
    with tarfile.open(tarball) as archive:
        source = archive.extractfile(f"package/build/{name}.min.js").read().decode("utf8")
    return source.replace("</script", "<\\/script")  # cannot close the inline tag early


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="local/dvc-plots-offline.html", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        try:
            scripts = [fetch_script(name, version, Path(workdir))
                       for name, version in cdn_packages()]
        except (OSError, subprocess.CalledProcessError) as err:
            print(f"error: could not fetch the vega scripts with npm ({err}); "
                  "the PNG figures in reports/figures/ need no network", file=sys.stderr)
            return 1
    inline = "\n".join(f"    <script>\n{source}\n    </script>" for source in scripts)
    write_text(args.out, PAGE.format(scripts=inline))
    print(f"wrote {args.out}; use: dvc plots show --html-template {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
