"""``reports/summary.md``: what a person reads in five seconds, for a pull-request comment or the build page.

Rebuilt from the JSON reports in the reports directory each time a stage writes its report, so every
stage (and ``mlci run``) leaves a summary of the stages that ran: one line per stage with its verdict,
key facts, a link to its HTML report and when the report was written (a report left by an earlier run
shows its older time), then the gate's rules and the challenger-vs-champion numbers.
Plain Markdown built here rather than from a template: it is read from report dicts only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlci.core.atomic import atomic_write_files

SUMMARY_FILE = "summary.md"
DESCRIPTION_FILE = "description.txt"  # one plain line, e.g. for Jenkins' currentBuild.description
STAGES = ("validate", "evaluate", "gate", "build", "push", "deploy", "promote", "rollback", "monitor")
MAX_METRICS = 4


def write_summary(directory: Path) -> Path:
    """Write ``directory/summary.md`` from the stage reports found there; returns its path."""
    directory = Path(directory)
    reports = {}
    for stage in STAGES:
        path = directory / f"{stage}.json"
        try:
            reports[stage] = json.loads(path.read_text(encoding="utf-8"))
            reports[stage]["written"] = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(path.stat().st_mtime))
        except (OSError, ValueError):
            continue
    pages = {stage for stage in reports if (directory / f"{stage}.html").is_file()}
    path = directory / SUMMARY_FILE
    atomic_write_files({path: summary_markdown(reports, html=pages).encode("utf-8"),
                        directory / DESCRIPTION_FILE: (headline(reports).replace("**", "") + "\n").encode("utf-8")})
    return path


def summary_markdown(reports: dict[str, dict[str, Any]], html: frozenset[str] | set[str] = frozenset()) -> str:
    """The summary of ``reports`` (stage -> report dict as written to ``<stage>.json``)."""
    lines = ["# mlci summary", "", headline(reports), "", "| stage | verdict | key facts | report | written |",
             "|---|---|---|---|---|"]
    for stage, report in reports.items():
        link = f"[{stage}.html]({stage}.html)" if stage in html else f"[{stage}.json]({stage}.json)"
        lines.append(f"| {stage} | {_verdict(report)} | {_cell(_facts(stage, report))} | {link} "
                     f"| {report.get('written', '')} |")
    gate = reports.get("gate")
    if gate:
        lines += ["", "## Gate", "", "| rule | result | value | message |", "|---|---|---|---|"]
        for check in gate.get("checks", []):
            lines.append(f"| {_cell(check['name'])} | {check['status']} | {_cell(check_value(check))} "
                         f"| {_cell(check.get('message', ''))} |")
        rows = (gate.get("details") or {}).get("versus") or []
        if rows:
            lines += ["", "## Challenger vs champion", "", "| metric | slice | challenger | champion | Δ |",
                      "|---|---|---|---|---|"]
            for row in rows:
                lines.append(f"| {row['metric']} | {_cell(row.get('slice') or 'all rows')} | {_num(row['challenger'])} "
                             f"| {_num(row['champion'])} | {_signed(row.get('delta'))} |")
    return "\n".join(lines) + "\n"


def headline(reports: dict[str, dict[str, Any]]) -> str:
    """One line: the overall verdict and the gate's decision (also suited to a build description)."""
    failed = [stage for stage, report in reports.items() if not report.get("ok", True)]
    verdict = f"**FAILED** at {', '.join(failed)}" if failed else "**PASSED**"
    gate = reports.get("gate")
    if gate:
        details = gate.get("details") or {}
        champion = details.get("champion") or f"no champion ('{details.get('champion_alias')}' not set)"
        verdict += f" · gate: {details.get('challenger')} vs {champion}"
    return verdict


def check_value(check: dict[str, Any]) -> str:
    """A check's value as a person reads it; a bootstrap rule shows Δ and its lower bound, like its message."""
    details = check.get("details") or {}
    if "lower_bound" in details and details.get("delta") is not None:
        bound = details["lower_bound"]
        confidence = details.get("confidence")
        level = f"{confidence:.0%} " if isinstance(confidence, (int, float)) else ""
        return f"Δ {_signed(details['delta'])} ({level}lower bound {_signed(bound)})"
    if "delta" in details and details.get("delta") is not None:
        return f"Δ {_signed(details['delta'])}"
    return _num(check.get("value"))


def _verdict(report: dict[str, Any]) -> str:
    summary = report.get("summary") or {}
    if not report.get("ok", True):
        return f"❌ failed ({summary.get('failed', '?')} of {_plural(summary.get('checks', 0), 'check')})"
    if summary.get("warnings"):
        return f"⚠️ passed with {_plural(summary['warnings'], 'warning')}"
    return "✅ passed"


def _facts(stage: str, report: dict[str, Any]) -> str:
    details = report.get("details") or {}
    if stage == "validate":
        files = details.get("files") or []
        return "; ".join(f"{f['path']}: {_plural(f.get('rows') or 0, 'row')}" for f in files)
    if stage == "evaluate":
        shown = list((details.get("metrics") or {}).items())[:MAX_METRICS]
        return f"v{details.get('version')}: " + ", ".join(f"{k} {_num(v)}" for k, v in shown)
    if stage == "gate":
        champion = [c for c in report.get("checks", []) if c.get("group") == "champion"]
        if champion and (details.get("champion") is not None):
            return "; ".join(f"{c['name']}: {check_value(c)}" for c in champion)
        return f"{_plural(len(report.get('checks', [])), 'rule')} checked"
    if stage == "monitor":
        drifted = details.get("drifted_features")
        if drifted is None:
            return ""
        return (f"{_plural(len(drifted), 'drifted feature')}{': ' + ', '.join(drifted) if drifted else ''}; "
                f"retrain: {'yes' if details.get('retrain') else 'no'}")
    if stage in ("build", "push"):
        image = details.get("image") or {}
        return f"{image.get('name', '')} {image.get('digest') or ''}".strip() if isinstance(image, dict) else str(image)
    if details.get("env") is not None:
        return f"v{details.get('version')} on {details['env']}"
    return ""


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _signed(value: Any) -> str:
    return f"{value:+.4g}" if isinstance(value, (int, float)) else "–"


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")
