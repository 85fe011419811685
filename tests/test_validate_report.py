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
