"""`mlci registry diff` says what it said before it read the typed record.

The expected outputs in ``tests/fixtures/rendered/*-diff-*`` were rendered by the code that read the stored
record by string keys, on the release fixtures and on a registry of varied versions built from them (a 0.1.0
record, a format-2 record, and two changed in every section the diff compares: estimator, metrics, CV, data
files with seeded splits, features, schema, libraries and git)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
RENDERED = FIXTURES / "rendered"

# (registry, the version pairs diffed in it)
CASES = [
    ("release-0.1.0", [("1", "1")]),
    ("format2", [("1", "2"), ("2", "1")]),
    ("varied", [("1", "2"), ("2", "3"), ("3", "2"), ("3", "4"), ("4", "1"), ("2", "2")]),
]


def _record(registry: str, version: int) -> dict[str, Any]:
    return json.loads((FIXTURES / registry / "versions" / f"v{version}" / "version.json").read_text())


def _changed(record: dict[str, Any]) -> dict[str, Any]:
    """A later version changed in every section the diff compares."""
    record["estimator"]["params"] = {**record["estimator"]["params"], "learning_rate": 0.05, "max_depth": 6}
    record["metrics"] = {k: v for k, v in record["metrics"].items() if k != "brier"} | {"roc_auc": 0.75}
    record["cv"]["roc_auc"]["mean"] = 0.7512
    del record["cv"]["f1"]
    split = {"fraction": 0.25, "seed": 7}
    train = record["data"]["train"]
    record["data"]["train"] = {"path": train["path"], "sha256": train["sha256"], "rows": 4500,
                               "split": {**split, "part": "train"},
                               "row_identity": {**train["row_identity"], "distinct_rows": 4498}}
    record["data"]["holdout"] = {"path": train["path"], "sha256": train["sha256"], "rows": 1500,
                                 "split": {**split, "part": "holdout"}}
    record["features"] = [f for f in record["features"] if f != "region"]
    record["schema_sha256"] = "0" * 64
    record["libraries"] = {**record["libraries"], "scikit-learn": "1.9.2", "lightgbm": "4.6.0"}
    record["git"] = {"commit": "4e1f" * 10, "dirty": True, "branch": "main"}
    return record


def _sparse(record: dict[str, Any]) -> dict[str, Any]:
    """A version with the optional sections absent: no metrics, features, holdout or git."""
    for key in ("metrics", "features"):
        record.pop(key)
    record["data"] = {"train": record["data"]["train"]}
    record["git"] = {"commit": "9c0d" * 10, "dirty": False, "branch": None}
    return record


def build_registry(root: Path, label: str) -> Path:
    """A local registry directory holding the versions of case ``label``."""
    if label != "varied":
        shutil.copytree(FIXTURES / ("registry-0.1.0" if label == "release-0.1.0" else "registry-format2"), root)
        return root
    records = [_record("registry-0.1.0", 1), _record("registry-format2", 1),
               _changed(_record("registry-format2", 2)), _sparse(_record("registry-format2", 2))]
    for number, record in enumerate(records, start=1):
        record["version"] = number
        directory = root / "versions" / f"v{number}"
        directory.mkdir(parents=True)
        (directory / "version.json").write_text(json.dumps(record, indent=2))
    (root / "aliases.json").write_text("{}")
    return root


def project_with(directory: Path, registry: Path) -> Path:
    from tests.serving_support import copy_example

    project = copy_example(directory)
    text = (project / "mlci.yaml").read_text().replace("path: .mlci/registry", f"path: {registry}")
    (project / "mlci.yaml").write_text(text)
    return project


@pytest.mark.parametrize("label, pairs", CASES)
def test_registry_diff_says_what_it_said_before_it_read_the_typed_record(tmp_path, run_cli, label, pairs):
    project = project_with(tmp_path / "project", build_registry(tmp_path / "registry", label))
    for left, right in pairs:
        for suffix, options in (("txt", ()), ("json", ("--json",))):
            code, out, err = run_cli("-C", project, *options, "registry", "diff", left, right)
            assert code == 0, err
            assert out == (RENDERED / f"{label}-diff-{left}-{right}.{suffix}").read_text()
