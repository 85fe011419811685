"""Every HTML report renders completely in a real browser (headless Chromium) under the
Content-Security-Policy Jenkins gives published reports: no CSP violation, the stylesheet applied, every
plot drawn, and the page identical, pixel for pixel, to its render without the policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlci.core.reports import Check, Report, write_report
from mlci.ops.reporting.render import render
from tests.browser import Chromium, ReportServer, pixel_difference
from tests.model_projects import write_project

HEADER_BACKGROUND = "rgb(246, 248, 250)"  # header { background: #f6f8fa } in templates/reports/mlci.css


@pytest.fixture(scope="module")
def browser(chromium):
    instance = Chromium(chromium)
    yield instance
    instance.close()


def _cli(*args) -> None:
    from mlci.cli.main import run

    code = run([str(a) for a in args])
    assert code in (0, 1), f"mlci {' '.join(map(str, args))} exited {code}"


@pytest.fixture(scope="module")
def report_dirs(tmp_path_factory) -> dict[str, Path]:
    """Report directories from real runs: a binary project through validate, train, evaluate, gate against a
    promoted champion, monitor and a Jenkinsfile check; a regression and a multiclass evaluation; a
    delivery report."""
    base = tmp_path_factory.mktemp("csp")
    rules = [{"metric": "roc_auc", "min": 0.6}, {"metric": "roc_auc", "max_drop": 0.01, "bootstrap": True},
             {"metric": "accuracy", "slice": {"column": "region", "value": "east"}, "min": 0.5, "severity": "warn"}]
    binary = write_project(base / "binary", gates={"rules": rules, "bootstrap_samples": 200})
    _cli("-C", binary, "validate")
    _cli("-C", binary, "train")
    _cli("-C", binary, "evaluate")
    _cli("-C", binary, "registry", "promote", "1", "--to", "production")
    config = yaml.safe_load((binary / "mlci.yaml").read_text())
    config["model"]["params"] = {"C": 0.01, "max_iter": 500}
    (binary / "mlci.yaml").write_text(yaml.safe_dump(config))
    _cli("-C", binary, "train")
    _cli("-C", binary, "evaluate")
    _cli("-C", binary, "gate")
    _cli("-C", binary, "monitor", "--reference", "data/train.csv", "--current", "data/holdout.csv")
    _cli("-C", binary, "jenkinsfile", "--check")
    dirs = {"binary": binary / "reports"}
    for task in ("regression", "multiclass"):
        root = write_project(base / task, task=task)
        _cli("-C", root, "train")
        _cli("-C", root, "evaluate")
        dirs[task] = root / "reports"
    delivery = base / "delivery"
    report = Report(kind="build", details={"image": "127.0.0.1:5000/x:1"})
    report.add(Check(name="build", passed=True, message="built"))
    write_report(report, delivery, html=render("reports/delivery.html.j2", title="Image build", ok=True,
                                               report=report))
    dirs["delivery"] = delivery
    return dirs


def pages(report_dirs) -> list[tuple[Path, str]]:
    return [(d, p.name) for d in report_dirs.values() for p in sorted(d.glob("*.html"))]


def test_every_report_renders_completely_under_jenkins_csp(report_dirs, browser):
    found = {name for _, name in pages(report_dirs)}
    assert {"validate.html", "evaluate.html", "gate.html", "monitor.html", "build.html", "jenkinsfile.html"} <= found
    problems = []
    for directory, name in pages(report_dirs):
        with ReportServer(directory) as server:
            strict = browser.load(server.url("csp", name))
            open_ = browser.load(server.url("open", name))
        where = f"{directory.parent.name}/{name}"
        facts = strict.facts
        if strict.csp_violations():
            problems.append(f"{where}: CSP violations {strict.csp_violations()[:3]}")
        if strict.errors():
            problems.append(f"{where}: console errors {strict.errors()[:3]}")
        if not any((s["href"] or "").endswith("/mlci.css") and s["rules"] > 0 for s in facts["sheets"]):
            problems.append(f"{where}: stylesheet not applied: {facts['sheets']}")
        if facts["headerBackground"] != HEADER_BACKGROUND or facts["bodyMargin"] != "0px":
            problems.append(f"{where}: computed styles {facts['headerBackground']}, {facts['bodyMargin']}")
        if facts["inlineStyles"] or facts["styleElements"] or facts["scripts"]:
            problems.append(f"{where}: inline style/script {facts}")
        for image in facts["images"]:
            if not (image["complete"] and image["naturalWidth"] > 0):
                problems.append(f"{where}: image {image['src']} not drawn")
        if any(svg["width"] < 50 or svg["height"] < 50 for svg in facts["svgs"]):
            problems.append(f"{where}: a plot has no size: {facts['svgs']}")
        difference = pixel_difference(strict.screenshot, open_.screenshot)
        if difference > 0:
            problems.append(f"{where}: {difference:.2%} of pixels differ from the render without the policy")
    assert not problems, "\n".join(problems)


def test_plots_are_present_where_a_person_expects_them(report_dirs, browser):
    expected = {("binary", "evaluate.html"): 4, ("binary", "monitor.html"): 5,
                ("regression", "evaluate.html"): 3, ("multiclass", "evaluate.html"): 2}
    for (project, name), minimum in expected.items():
        with ReportServer(report_dirs[project]) as server:
            load = browser.load(server.url("csp", name))
        plots = len(load.facts["svgs"]) + len(load.facts["images"])
        assert plots >= minimum, f"{project}/{name}: {plots} plots"


def test_the_csp_check_catches_inline_styles(tmp_path, browser):
    """The harness itself: a page with inline CSS under the policy is reported, not passed."""
    (tmp_path / "bad.html").write_text('<!doctype html><html><head><style>body{margin:0}</style></head>'
                                       '<body><header>x</header><svg width="100" height="100">'
                                       '<rect width="100" height="100" style="fill:#fff"/></svg></body></html>')
    with ReportServer(tmp_path) as server:
        strict = browser.load(server.url("csp", "bad.html"))
        open_ = browser.load(server.url("open", "bad.html"))
    assert strict.csp_violations()
    assert pixel_difference(strict.screenshot, open_.screenshot) > 0


def test_the_stylesheet_is_copied_beside_a_report(tmp_path):
    report = Report(kind="x")
    write_report(report, tmp_path, html="<html></html>")
    shipped = Path(__file__).resolve().parent.parent / "templates" / "reports" / "mlci.css"
    assert (tmp_path / "mlci.css").read_bytes() == shipped.read_bytes()
