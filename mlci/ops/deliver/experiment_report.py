"""The experiment's HTML page: the running estimate of (challenger - champion) and its always-valid bound
over time, drawn as an SVG file beside the page, with an external stylesheet. Jenkins serves archived
reports under a Content-Security-Policy that blocks inline styles and scripts; an <img> of an SVG file and
a <link> to a CSS file from the same directory are allowed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from mlci.core.atomic import atomic_write_text
from mlci.core.reports import Report
from mlci.ops.reporting.render import render, template_text

STYLE_FILE = "experiment.css"
WIDTH, HEIGHT, MARGIN = 640, 300, 50


def experiment_page(report: Report, directory: Path) -> str:
    """Write the plot (``<kind>-bound.svg``) and the stylesheet into ``directory``; return the page's HTML."""
    plot = f"{report.kind}-bound.svg"
    atomic_write_text(Path(directory) / plot, bound_svg(report.details.get("timeline") or [],
                                                        report.details.get("epsilon"),
                                                        report.details.get("score_width") or 1.0))
    atomic_write_text(Path(directory) / STYLE_FILE, template_text("reports/experiment.css"))
    return render("reports/experiment.html.j2", report=report, ok=report.ok, plot=plot, style=STYLE_FILE,
                  title=f"mlci {report.kind}")


def bound_svg(points: list[dict[str, Any]], epsilon: float | None, score_width: float = 1.0) -> str:
    """Estimate (line) and bound (band) against labelled rows, with the -ε line the decision uses. The
    band is cut at ±score_width, where differences of scores can lie: the first looks' bounds are wide."""
    shown = [{**p, "lower": max(p["lower"], -score_width), "upper": min(p["upper"], score_width)}
             for p in points if p["lower"] is not None and p["upper"] is not None]
    header = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
              f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">')
    if not shown:
        return (header + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
                'no labelled rows yet</text></svg>\n')
    values = [p["lower"] for p in shown] + [p["upper"] for p in shown] + [0.0]
    if epsilon is not None:
        values.append(-epsilon)
    low, high = min(values), max(values)
    low, high = (low - 0.5, high + 0.5) if math.isclose(low, high) else (low, high)
    most = max(p["rows"] for p in shown)

    def x(rows: float) -> float:
        return MARGIN + (WIDTH - 2 * MARGIN) * rows / most

    def y(value: float) -> float:
        return HEIGHT - MARGIN - (HEIGHT - 2 * MARGIN) * (value - low) / (high - low)

    band = " ".join(f"{x(p['rows']):.1f},{y(p['upper']):.1f}" for p in shown) + " " + \
        " ".join(f"{x(p['rows']):.1f},{y(p['lower']):.1f}" for p in reversed(shown))
    line = " ".join(f"{x(p['rows']):.1f},{y(p['estimate']):.1f}" for p in shown)
    parts = [header,
             f'<polygon points="{band}" fill="#54aeff" fill-opacity="0.3" stroke="none"/>',
             f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="2"/>',
             _hline(y(0.0), "#57606a", "0 = -ε" if not epsilon else "0")]
    if epsilon:
        parts.append(_hline(y(-epsilon), "#cf222e", f"-ε = {-epsilon:g}"))
    parts += [f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" '
              'stroke="#1f2328"/>',
              f'<text x="{WIDTH / 2}" y="{HEIGHT - 12}" text-anchor="middle">labelled rows (0 to {most})</text>',
              f'<text x="8" y="{y(high):.1f}">{high:+.3f}</text>',
              f'<text x="8" y="{y(low):.1f}">{low:+.3f}</text>',
              f'<text x="{MARGIN}" y="16">{escape("challenger - champion: estimate and always-valid bound")}</text>',
              "</svg>\n"]
    return "\n".join(parts)


def _hline(at: float, colour: str, label: str) -> str:
    return (f'<line x1="{MARGIN}" y1="{at:.1f}" x2="{WIDTH - MARGIN}" y2="{at:.1f}" stroke="{colour}" '
            f'stroke-dasharray="4 3"/><text x="{WIDTH - MARGIN + 2}" y="{at + 4:.1f}" fill="{colour}">'
            f"{escape(label)}</text>")
