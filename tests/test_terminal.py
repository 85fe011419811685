"""What a person sees in a terminal or the Jenkins console: colour switches, aligned tables, no lost
values off a TTY, progress with a real rate and ETA, a heartbeat during the final fit, ``--json``
anywhere, ``-o -`` as stdout, plurals."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from mlci.cli import output
from mlci.core.progress import Heartbeat, Progress, plural, rate_text
from mlci.core.reports import Check, Report

ANSI = re.compile(r"\x1b\[[0-9;]*m")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "credit-risk"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_tty(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.fixture
def tty(monkeypatch):
    monkeypatch.setattr("sys.stdout", _Tty())
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.mark.parametrize("env, on_tty, expected", [
    ({}, True, True), ({}, False, False),
    ({"NO_COLOR": "1"}, True, False), ({"FORCE_COLOR": "1"}, False, True),
    ({"FORCE_COLOR": "0"}, False, False), ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, False, False),
])
def test_colour_follows_no_color_force_color_and_the_tty(monkeypatch, env, on_tty, expected):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert output.colour(_Tty() if on_tty else io.StringIO()) is expected


def test_forced_colour_reaches_a_pipe_and_no_color_strips_it(run_cli, tmp_path):
    from tests.model_projects import write_project

    root = write_project(tmp_path / "p")
    _, out, _ = run_cli("-C", root, "validate", env={"FORCE_COLOR": "1"})
    assert "\x1b[32mPASSED" in out
    _, out, _ = run_cli("-C", root, "validate", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[" not in out and "PASSED" in out


def test_columns_align_by_visible_width_with_colour(tty):
    rows = [("a", output.click.style("pass", fg="green"), "x"), ("bbbbbb", output.click.style("fail", fg="red"), "y")]
    lines = output.table(rows, ("name", "result", "message")).splitlines()
    visible = [ANSI.sub("", line) for line in lines]
    assert visible[0].index("result") == visible[2].index("pass") == visible[3].index("fail")
    assert visible[0].index("message") == visible[2].index("x") == visible[3].index("y")


def test_cells_are_cut_on_a_terminal_only(monkeypatch):
    long = "lower bound " + "9" * 100
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert long in output.table([(long,)], ("v",))
    monkeypatch.setattr("sys.stdout", _Tty())
    assert long not in output.table([(long,)], ("v",)) and "…" in output.table([(long,)], ("v",))


@pytest.mark.parametrize("count, noun, text", [(1, "check", "1 check"), (0, "check", "0 checks"),
                                               (2, "row", "2 rows"), (1234, "row", "1,234 rows")])
def test_plurals(count, noun, text):
    assert output.plural(count, noun) == text == plural(count, noun)


def test_check_summary_uses_singular_for_one(no_tty):
    report = Report(kind="x", checks=[Check("only", True)])
    assert "1 check, 0 failed, 0 warnings" in output.render_checks(report)


@pytest.mark.parametrize("done, seconds, text", [(1, 12.5, "12.5 s/fold"), (3, 2.0, "1.5 folds/s"),
                                                 (500, 2.0, "250 folds/s")])
def test_slow_items_read_as_seconds_per_item(done, seconds, text):
    assert rate_text(done, seconds, "folds") == text


def test_progress_lines_have_a_rate_and_an_eta(monkeypatch):
    clock = iter([0.0, 0.0, 10.0, 10.0, 20.0, 20.0, 30.0, 30.0, 30.0, 30.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    stream = io.StringIO()
    with Progress("cross-validation", total=3, unit="folds", stream=stream, interval=0) as progress:
        for _ in range(3):
            progress.advance(1)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "cross-validation: 1/3 folds (10.0 s/fold, ETA 20s, elapsed 10s)"
    assert lines[-1].startswith("cross-validation: 3/3 folds (10.0 s/fold")
    assert "0 folds/s" not in stream.getvalue()


def test_an_estimated_total_never_shows_fewer_rows_than_counted():
    stream = io.StringIO()
    with Progress("validating d.csv", total=5983, stream=stream, interval=0, estimated=True) as progress:
        progress.advance(3000)
        progress.advance(3000)
    text = stream.getvalue()
    assert "3,000/~5,983 rows" in text and "6,000/5,983" not in text and "6,000/~5,983" not in text
    assert "6,000/~6,000 rows" in text


def test_validate_of_a_csv_never_counts_past_its_total(tmp_path):
    from mlci.core import progress as progress_module
    from mlci.core.dataschema import load_schema
    from mlci.ops.data.validate import validate_file

    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  a: {type: integer}\n  b: {type: string}\n")
    data = tmp_path / "d.csv"  # rows of growing length: a sample of the first ones underestimates the count
    data.write_text("a,b\n" + "".join(f"{i},{'x' * (i // 40)}\n" for i in range(6000)))
    stream = io.StringIO()
    original = progress_module.Progress.__init__

    def to_stream(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "stream": stream, "interval": 0.0})

    progress_module.Progress.__init__ = to_stream
    try:
        validate_file(data, load_schema(schema), batch_rows=1000)
    finally:
        progress_module.Progress.__init__ = original
    for done, total in re.findall(r"([\d,]+)/~?([\d,]+) rows", stream.getvalue()):
        assert int(done.replace(",", "")) <= int(total.replace(",", "")), stream.getvalue()
    assert "6,000" in stream.getvalue().splitlines()[-1]


def test_heartbeat_shows_life_during_uncountable_work():
    stream = io.StringIO()
    with Heartbeat("final fit", stream=stream, interval=0.05) as beat:
        time.sleep(0.3)
    lines = stream.getvalue().splitlines()
    assert beat.beats >= 2 and lines[0].startswith("final fit: still running (")
    assert lines[-1].startswith("final fit: done (took ")


def test_train_reports_its_final_fit(run_cli, tmp_path):
    from tests.model_projects import write_project

    root = write_project(tmp_path / "p")
    code, _, err = run_cli("-C", root, "train")
    assert code == 0 and "final fit on 600 rows: done (took" in err


def test_json_is_accepted_after_the_subcommand(run_cli, tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    (project / "mlci.yaml").write_text((EXAMPLE / "mlci.yaml").read_text())
    code_before, out_before, _ = run_cli("-C", project, "--json", "config", "check")
    code_after, out_after, err = run_cli("-C", project, "config", "check", "--json")
    assert code_after == code_before and json.loads(out_after) == json.loads(out_before), err


def test_alerts_json_and_dash_output(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("-C", EXAMPLE, "--json", "alerts")
    rules = json.loads(out)
    assert code == 0 and rules["groups"]
    code, out, _ = run_cli("-C", EXAMPLE, "alerts", "-o", "-")
    assert code == 0 and yaml.safe_load(out) == rules and not (tmp_path / "-").exists()
    code, out, _ = run_cli("config", "schema", "-o", "-")
    assert code == 0 and json.loads(out) and not (tmp_path / "-").exists()


def test_schema_infer_dash_prints(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("a,y\n1,0\n2,1\n3,0\n")
    code, out, err = run_cli("schema", "infer", "d.csv", "--target", "y", "-o", "-")
    assert code == 0, err
    assert yaml.safe_load(out)["target"] == "y" and not (tmp_path / "-").exists()
