"""The validate HTML report leads with what failed: failing checks first, the passing ones folded away
in a <details> element (no script needed, so it works under Jenkins' Content-Security-Policy)."""

from __future__ import annotations

import re


def test_failures_come_first_and_passing_checks_are_folded(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("columns:\n  a: {type: integer, min: 0}\n  b: {type: string}\n")
    (tmp_path / "d.csv").write_text("a,b\n1,x\n-5,y\n3,z\n")
    code, _, err = run_cli("validate", "d.csv", "--schema", "s.yaml", "--reports", "out")
    assert code == 1, err
    page = (tmp_path / "out" / "validate.html").read_text()
    section = page[page.index("<h2><code>d.csv</code></h2>"):]
    folded = section.index("<details>")
    failing = re.findall(r"<td class=\"fail\">fail</td>", section)
    assert failing and all(m.start() < folded for m in re.finditer(r"<td class=\"fail\">", section))
    assert "1 failed check" in section[:folded]
    assert re.search(r"<summary>\d+ passing checks</summary>", section)
    assert all(m.start() > folded for m in re.finditer(r"<td class=\"pass\">pass</td>", section))


def _profile_case(seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = int(rng.integers(5, 400))
    frame = pd.DataFrame({
        "n": rng.integers(-50, 50, rows),
        "x": np.where(rng.random(rows) < 0.2, np.nan, rng.normal(3, 2, rows).round(4)),
        "c": rng.choice(["red", "green", "blue", None], rows, p=[0.5, 0.3, 0.15, 0.05]),
        "b": rng.choice([True, False], rows),
    })
    return frame


def test_the_column_profile_states_what_pandas_computes_of_the_same_file(tmp_path, run_cli, monkeypatch):
    """Missing values, range, mean and the most frequent values of every column, over seeded random files
    read in several batches (``--batch-rows`` small), equal pandas' figures for the same file."""
    import json

    import pandas as pd
    import pytest

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("columns:\n  n: {type: integer}\n  x: {type: float}\n"
                                     "  c: {type: category}\n  b: {type: boolean}\n")
    for seed in range(6):
        frame = _profile_case(seed)
        frame.to_csv(tmp_path / "d.csv", index=False)
        code, out, err = run_cli("--json", "validate", "d.csv", "--schema", "s.yaml", "--reports", "out")
        assert code == 0, err
        profile = json.loads(out)["details"]["files"][0]["profile"]
        read = pd.read_csv(tmp_path / "d.csv")
        for name in ("n", "x"):
            assert profile[name]["missing"] == int(read[name].isna().sum())
            assert (profile[name]["min"], profile[name]["max"]) == (read[name].min(), read[name].max())
            assert profile[name]["mean"] == pytest.approx(read[name].mean(), rel=1e-9)
        counts = read["c"].value_counts()
        assert profile["c"]["missing"] == int(read["c"].isna().sum())
        assert {t["value"]: t["rows"] for t in profile["c"]["top"]} == counts.to_dict()
        assert profile["c"]["distinct"] == len(counts)
        assert {t["value"]: t["rows"] for t in profile["b"]["top"]} == read["b"].value_counts().to_dict()
    page = (tmp_path / "out" / "validate.html").read_text()
    assert "<summary>column profile</summary>" in page and "<code>red</code>" in page


def test_a_column_with_too_many_values_stops_counting_them(tmp_path, run_cli, monkeypatch):
    import json

    from mlci.ops.data.validate import PROFILE_MAX_DISTINCT

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("columns:\n  c: {type: category}\n")
    (tmp_path / "d.csv").write_text("c\n" + "\n".join(f"v{i}" for i in range(PROFILE_MAX_DISTINCT + 5)) + "\n")
    code, out, err = run_cli("--json", "validate", "d.csv", "--schema", "s.yaml", "--reports", "out")
    assert code == 0, err
    profile = json.loads(out)["details"]["files"][0]["profile"]["c"]
    assert profile["distinct_over"] == PROFILE_MAX_DISTINCT and "top" not in profile
