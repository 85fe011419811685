"""Report types shared by every checking command, and their JSON and JUnit XML forms.

A ``Report`` is a list of ``Check``s plus free-form ``details``. Its exit code follows the contract:
0 when no ``fail`` check failed (``warn`` checks may fail), 1 otherwise. JUnit gets one testcase per
check, so Jenkins' ``junit`` step shows validations, gates and drift checks as tests; a failed ``warn``
check is a failed testcase too, which makes Jenkins mark the build UNSTABLE.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from mlci.core.atomic import atomic_write_bytes, atomic_write_files
from mlci.core.jsonvalue import dumps, to_json_value
from mlci.core.summary import STAGES, write_summary

Status = Literal["pass", "fail", "warn", "skip"]

# Every HTML report links this stylesheet, written beside it: Jenkins' default Content-Security-Policy
# for published reports (style-src 'self') blocks inline <style> elements and style= attributes.
STYLESHEET = "mlci.css"


@dataclass
class Check:
    """One verdict: a validation rule, a gate rule, a feature's drift test."""

    name: str
    passed: bool
    message: str = ""
    severity: Literal["fail", "warn"] = "fail"
    value: Any = None
    threshold: Any = None
    group: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False
    column: str | None = None  # the column or feature the check is about (read this, never parse ``name``)
    rule: str | None = None  # the rule it applies ("min", "pattern", "method" of a drift test, ...)

    @property
    def status(self) -> Status:
        if self.skipped:
            return "skip"
        if self.passed:
            return "pass"
        return "warn" if self.severity == "warn" else "fail"

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "status": self.status, "passed": _plain(self.passed), "severity": self.severity,
               "value": _plain(self.value), "threshold": _plain(self.threshold), "message": self.message}
        if self.group:
            out["group"] = self.group
        if self.column is not None:
            out["column"] = self.column
        if self.rule is not None:
            out["rule"] = self.rule
        if self.details:
            out["details"] = _plain(self.details)
        return out


@dataclass
class Report:
    """What a checking command found. ``kind`` names it: validate, gate, monitor, ..."""

    kind: str
    checks: list[Check] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # written report files: format -> path

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ok": self.ok,
                "summary": {"checks": len(self.checks), "failed": len(self.failed),
                            "warnings": len(self.warnings),
                            "skipped": sum(c.skipped for c in self.checks)},
                "checks": [c.to_dict() for c in self.checks],
                "details": _plain(self.details), "files": self.files}


def _plain(value: Any) -> Any:
    """JSON-typed values (``mlci.core.jsonvalue``): NaN becomes None, NumPy values plain Python ones,
    an unknown type raises TypeError."""
    return to_json_value(value)


def junit_xml(report: Report, *, suite: str | None = None, duration: float = 0.0) -> bytes:
    suite_name = suite or f"mlci.{report.kind}"
    root = ET.Element("testsuites")
    node = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(report.checks)),
                         failures=str(len(report.failed) + len(report.warnings)),
                         errors="0", skipped=str(sum(c.skipped for c in report.checks)),
                         time=f"{duration:.3f}")
    for check in report.checks:
        # The junit plugin splits a class name at its last dot into package and class
        # (junit-plugin CaseResult.getPackageName): a group like `data/train.csv` must not hold one.
        classname = f"{suite_name}.{check.group.replace('.', '_')}" if check.group else suite_name
        case = ET.SubElement(node, "testcase", name=check.name, classname=classname, time="0")
        text = check.message or ""
        if check.value is not None or check.threshold is not None:
            text += f"\nvalue: {_plain(check.value)}\nthreshold: {_plain(check.threshold)}"
        if check.skipped:
            ET.SubElement(case, "skipped", message=_clean(check.message))
        elif not check.passed:
            kind = "failure"
            tag = ET.SubElement(case, kind, message=_clean(check.message)[:500],
                                type="warning" if check.severity == "warn" else "failure")
            tag.text = _clean(text)
        if check.details:
            out = ET.SubElement(case, "system-out")
            out.text = _clean(dumps(check.details, indent=1)[:20000])
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (control characters from hostile data)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)


def write_report(report: Report, directory: Path, name: str | None = None, *, html: str | None = None,
                 duration: float = 0.0) -> dict[str, str]:
    """Write ``<name>.json``, ``<name>.junit.xml`` (and ``<name>.html`` with the stylesheet it links,
    when given) atomically."""
    name = name or report.kind
    directory = Path(directory)
    paths = {"json": directory / f"{name}.json", "junit": directory / f"{name}.junit.xml"}
    if html is not None:
        paths["html"] = directory / f"{name}.html"
    report.files.update({k: str(p) for k, p in paths.items()})
    files = {paths["json"]: (dumps(report.to_dict()) + "\n").encode("utf-8"),
             paths["junit"]: junit_xml(report, duration=duration)}
    if html is not None:
        files.update(_stylesheet_if_changed(directory))
        files[paths["html"]] = html.encode("utf-8")
    atomic_write_files(files)
    if name in STAGES:
        paths["summary"] = write_summary(directory)
        report.files["summary"] = str(paths["summary"])
    return report.files


def write_stylesheet(directory: Path) -> Path:
    """Write the reports' stylesheet (``templates/reports/mlci.css``) into ``directory``."""
    for path, data in _stylesheet_if_changed(directory).items():
        atomic_write_bytes(path, data)
    return Path(directory) / STYLESHEET


def _stylesheet_if_changed(directory: Path) -> dict[Path, bytes]:
    path = Path(directory) / STYLESHEET
    data = (resources.files("mlci.templates") / "reports" / STYLESHEET).read_bytes()
    return {} if path.is_file() and path.read_bytes() == data else {path: data}
