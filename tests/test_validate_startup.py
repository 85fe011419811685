"""`mlci validate`'s start-up: it imports only what validation needs, and the parse of the data starts
before the rule and report code is imported, so that the two overlap on a machine with a free core."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.fixture
def bare_files(tmp_path):
    """A CSV of a few thousand rows and its schema, outside any project (no mlci.yaml)."""
    rows = ["id,score,level"] + [f"{i},{i * 0.5},{'ab'[i % 2]}" for i in range(1, 5001)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "schema.yaml").write_text(
        "columns:\n  id: {type: integer, unique: true, nullable: false}\n  score: {type: float, min: 0}\n"
        "  level: {type: category, values: [a, b]}\n")
    return tmp_path


def _run_validate(directory, prelude: str = "") -> tuple[set[str], dict]:
    """Run `mlci validate` on the bare files in a fresh interpreter; the modules it loaded, and what the
    ``prelude`` recorded in ``events``."""
    code = ("import sys, io, contextlib, json\nevents = []\n" + prelude +
            "from mlci.cli.main import run\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    rc = run(['validate', 'data.csv', '--schema', 'schema.yaml', '--reports', 'reports'])\n"
            "print(json.dumps({'rc': rc, 'modules': sorted(sys.modules), 'events': events}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=directory, capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0, out.stderr
    return set(result["modules"]), result


def test_validating_bare_files_imports_no_pandas_scikit_learn_or_project_config(bare_files):
    loaded, _ = _run_validate(bare_files)
    report = json.loads((bare_files / "reports" / "validate.json").read_text())
    assert report["ok"] is True and len(report["checks"]) >= 8  # the checks ran and were written
    heavy = sorted(m for m in loaded if m.split(".")[0] in ("pandas", "sklearn", "scipy", "matplotlib"))
    assert heavy == [], f"`mlci validate` imports {heavy[:5]}"
    assert "mlci.core.config" not in loaded  # the project's config model: no mlci.yaml here
