#!/usr/bin/env python3
"""The serving image's size: what `mlci build` adds to its base image, and which packages take it.

    python3 benchmarks/bench_image.py [--base IMAGE]

Trains the bundled credit-risk example (with a logistic regression, to be quick), builds its serving
image with `mlci build` on the real Docker engine, and prints the image's size, its base's, the
difference (target: <= 290 MB over the base) and the size of each installed package inside the image.
``--base`` defaults to ``$MLCI_TEST_BASE_IMAGE`` or ``mlci-base:bookworm`` (the Debian base image
``scripts/setup-services.sh`` makes where no public registry is reachable); users keep
``python:3.11-slim``. The image is removed afterwards; the wheelhouse stays cached.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import yaml

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "credit-risk"
TARGET_MB = 290
# Inside the image: each top-level entry of site-packages (dist-info folders folded into their package)
SIZES = r"""
import os, site
root = site.getsitepackages()[0]
sizes = {}
for entry in os.listdir(root):
    path = os.path.join(root, entry)
    total = os.path.getsize(path) if os.path.isfile(path) else sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    name = entry.split("-")[0].removesuffix(".libs").removesuffix(".py").lower().replace("_", "-")
    sizes[name] = sizes.get(name, 0) + total
print(sizes)
"""


def cli(*args: str) -> tuple[int, str]:
    from mlci.cli.main import run

    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(io.StringIO()):
        code = run(list(args))
    return code, output.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=os.environ.get("MLCI_TEST_BASE_IMAGE", "mlci-base:bookworm"))
    args = parser.parse_args()
    import docker

    engine = docker.from_env()
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder) / "credit-risk"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mlci", "reports", "predictions"))
        config = yaml.safe_load((project / "mlci.yaml").read_text())
        config["model"].update(estimator="sklearn.linear_model.LogisticRegression", params={"max_iter": 1000})
        config["image"] = {"name": "mlci-bench/credit-risk", "base": args.base}
        (project / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        for command in (["train"], ["--json", "build"]):
            code, out = cli("-C", str(project), *command)
            if code != 0:
                raise SystemExit(f"mlci {command[-1]} exited {code}")
        details = json.loads(out)["details"]
        image = details["image"]["id"]
        try:
            raw = engine.containers.run(image, entrypoint=["python", "-c", SIZES], network_mode="none", remove=True)
        finally:
            for tag in details["image"]["tags"]:
                engine.images.remove(f"{details['image']['name']}:{tag}", force=True)
    sizes = ast.literal_eval(raw.decode())  # a printed dict of names and byte counts
    print(f"serving image {details['size_mb']:.1f} MB; base {args.base} {details['base_size_mb']:.1f} MB; "
          f"added {details['added_mb']:.1f} MB = {details['added_mb'] / TARGET_MB:.2f}x the {TARGET_MB} MB budget")
    print(f"\n{'installed package':24} {'MB':>7}")
    for name, size in sorted(sizes.items(), key=lambda item: -item[1]):
        if size >= 100_000:
            print(f"{name:24} {size / 1e6:7.1f}")
    print(f"{'(all site-packages)':24} {sum(sizes.values()) / 1e6:7.1f}")


if __name__ == "__main__":
    main()
