"""Report plots written directly as inline SVG: lines, histograms, bars with error bars, a heatmap.

An evaluate report used to draw its plots with matplotlib, whose import and first figure cost about a
second of CPU and each further figure a tenth. These charts need none of it. Like ``plots.to_svg``'s
output, they carry no CSS: Jenkins serves reports under ``style-src 'self'``, so every colour and width
is an SVG presentation attribute. Texts are ``<text>`` elements (``texts`` reads them back).

A line keeps one point per half-pixel cell it passes through (the points it drops would be drawn over), so
a curve through a million thresholds is a few hundred points; a scatter plot draws at most
``SCATTER_POINTS`` rows, a seeded sample, and says so in its caption.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
GREY = "#808080"
SCATTER_POINTS = 5000
_LEFT, _RIGHT, _TOP, _BOTTOM = 62, 14, 12, 46  # margins around the plot area, px
_TEXT = re.compile(r"<text[^>]*>(.*?)</text>", re.S)


def texts(svg: str) -> set[str]:
    """The texts drawn in an SVG (unescaped)."""
    return {html.unescape(t) for t in _TEXT.findall(svg)}


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    decimals = max(0, 1 - math.floor(math.log10(step)))  # drops float noise such as 0.30000000000000004
    return [round(first + i * step, decimals) for i in range(int((high - first) / step + 1e-9) + 1)]


def _number(value: float) -> str:
    return f"{value:.6g}"


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Chart:
    """One plot area. Numeric axes span the data added (``x_range``/``y_range`` fix them); an axis given
    ``x_categories``/``y_categories`` puts one band per category instead."""

    width: int = 450
    height: int = 340
    x_label: str = ""
    y_label: str = ""
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None
    x_categories: list[str] | None = None
    y_categories: list[str] | None = None
    rotate_x: bool = False
    _marks: list[Any] = field(default_factory=list)
    _legend: list[tuple[str, str, bool]] = field(default_factory=list)
    _extent: list[list[float]] = field(default_factory=lambda: [[], []])

    # -- adding marks --------------------------------------------------------------------------------

    def _see(self, xs: Any, ys: Any) -> None:
        for axis, values in ((0, xs), (1, ys)):
            finite = np.asarray(values, dtype=float)
            finite = finite[np.isfinite(finite)]
            if finite.size:
                self._extent[axis] += [float(finite.min()), float(finite.max())]

    def line(self, xs: Any, ys: Any, *, colour: str = COLOURS[0], dashed: bool = False, marker: bool = False,
             label: str | None = None) -> None:
        self._see(xs, ys)
        self._marks.append(("line", np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), colour, dashed, marker))
        if label:
            self._legend.append((label, colour, dashed))

    def hline(self, y: float, *, colour: str = GREY, dashed: bool = True, label: str | None = None) -> None:
        self._see([], [y])
        self._marks.append(("hline", y, colour, dashed))
        if label:
            self._legend.append((label, colour, dashed))

    def vline(self, x: float, *, colour: str = GREY) -> None:
        self._see([x], [])
        self._marks.append(("vline", x, colour))

    def bars(self, lefts: Any, rights: Any, heights: Any, *, colour: str = COLOURS[0], opacity: float = 1.0,
             outline: bool = False, label: str | None = None) -> None:
        """Vertical bars from 0 to ``heights`` over [left, right] on a numeric x axis (histograms)."""
        self._see(list(lefts) + list(rights), list(heights) + [0.0])
        self._marks.append(("bars", list(lefts), list(rights), list(heights), colour, opacity, outline))
        if label:
            self._legend.append((label, colour, False))

    def category_bars(self, values: list[float], *, errors: tuple[list[float], list[float]] | None = None,
                      inside: list[str] | None = None) -> None:
        """One bar per category of the categorical axis (x: upwards; y: rightwards), with error bars
        (below/above the value) and a label drawn inside each bar."""
        horizontal = self.y_categories is not None
        low, high = (errors[0], errors[1]) if errors else ([0.0] * len(values), [0.0] * len(values))
        spans = [v - lo for v, lo in zip(values, low)] + [v + hi for v, hi in zip(values, high)] + [0.0]
        self._see(spans if horizontal else [], [] if horizontal else spans)
        self._marks.append(("category_bars", values, low, high, inside, horizontal))

    def scatter(self, xs: Any, ys: Any) -> None:
        self._see(xs, ys)
        self._marks.append(("scatter", np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)))

    def cells(self, matrix: Any) -> None:
        """A heatmap of ``matrix`` (rows on the y categories, columns on the x categories), counts written in."""
        self._marks.append(("cells", np.asarray(matrix)))

    # -- drawing -------------------------------------------------------------------------------------

    def svg(self, legend: str = "upper right") -> str:
        x0, y0 = self._left_margin(), _TOP
        x1, y1 = self.width - _RIGHT, self.height - _BOTTOM - (20 if self.rotate_x else 0)
        x_low, x_high = self._range(0, self.x_range)
        y_low, y_high = self._range(1, self.y_range)

        def sx(v: Any) -> Any:
            return x0 + (np.asarray(v, dtype=float) - x_low) / (x_high - x_low) * (x1 - x0)

        def sy(v: Any) -> Any:
            return y1 - (np.asarray(v, dtype=float) - y_low) / (y_high - y_low) * (y1 - y0)

        self._scale = (sx, sy, (x0, y0, x1, y1))
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                 f'viewBox="0 0 {self.width} {self.height}" font-family="DejaVu Sans, sans-serif" font-size="10">',
                 f'<rect x="0" y="0" width="{self.width}" height="{self.height}" fill="#ffffff"/>']
        parts += self._axes(x_low, x_high, y_low, y_high)
        for mark in self._marks:
            parts += getattr(self, f"_draw_{mark[0]}")(*mark[1:])
        parts += [f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="none" stroke="#000000" '
                  'stroke-width="0.8"/>']
        parts += self._draw_legend(legend)
        parts.append("</svg>")
        return "\n".join(parts)

    def _left_margin(self) -> int:
        """Room for the y tick labels: category names may be long (about 6 px a character)."""
        longest = max((len(c) for c in self.y_categories), default=0) if self.y_categories is not None else 0
        return max(_LEFT, 30 + 6 * longest)

    def _range(self, axis: int, fixed: tuple[float, float] | None) -> tuple[float, float]:
        categories = self.x_categories if axis == 0 else self.y_categories
        if fixed is not None:
            return fixed
        if categories is not None:
            return -0.5, len(categories) - 0.5
        seen = self._extent[axis]
        low, high = (min(seen), max(seen)) if seen else (0.0, 1.0)
        if high <= low:
            low, high = low - 0.5, high + 0.5
        pad = (high - low) * 0.05
        return low - pad, high + pad

    def _axes(self, x_low: float, x_high: float, y_low: float, y_high: float) -> list[str]:
        sx, sy, (x0, y0, x1, y1) = self._scale
        out = []
        x_ticks = (list(enumerate(self.x_categories)) if self.x_categories is not None else
                   [(v, _number(v)) for v in nice_ticks(x_low, x_high) if x_low <= v <= x_high])
        for value, text in x_ticks:
            x = float(sx(value))
            out.append(f'<line x1="{x:.1f}" y1="{y1}" x2="{x:.1f}" y2="{y1 + 4}" stroke="#000000" stroke-width="0.8"/>')
            if self.rotate_x:
                out.append(f'<text x="{x:.1f}" y="{y1 + 14}" text-anchor="end" '
                           f'transform="rotate(-30 {x:.1f} {y1 + 14})">{_esc(text)}</text>')
            else:
                out.append(f'<text x="{x:.1f}" y="{y1 + 15}" text-anchor="middle">{_esc(text)}</text>')
        y_ticks = (list(enumerate(self.y_categories)) if self.y_categories is not None else
                   [(v, _number(v)) for v in nice_ticks(y_low, y_high) if y_low <= v <= y_high])
        for value, text in y_ticks:
            y = float(sy(value))
            out.append(f'<line x1="{x0 - 4}" y1="{y:.1f}" x2="{x0}" y2="{y:.1f}" stroke="#000000" stroke-width="0.8"/>')
            out.append(f'<text x="{x0 - 6}" y="{y + 3.5:.1f}" text-anchor="end">{_esc(text)}</text>')
        out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{self.height - 8}" text-anchor="middle">'
                   f"{_esc(self.x_label)}</text>")
        middle = (y0 + y1) / 2
        out.append(f'<text x="12" y="{middle:.1f}" text-anchor="middle" transform="rotate(-90 12 {middle:.1f})">'
                   f"{_esc(self.y_label)}</text>")
        return out

    def _stroke(self, colour: str, dashed: bool, width: float = 1.5) -> str:
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        return f'fill="none" stroke="{colour}" stroke-width="{width}"{dash}'

    def _draw_line(self, xs: np.ndarray, ys: np.ndarray, colour: str, dashed: bool, marker: bool) -> list[str]:
        sx, sy, _ = self._scale
        keep = np.isfinite(xs) & np.isfinite(ys)
        points = _thinned(np.column_stack([sx(xs[keep]), sy(ys[keep])]))
        text = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out = [f'<polyline points="{text}" {self._stroke(colour, dashed)} stroke-linejoin="round"/>']
        if marker:
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points]
        return out

    def _draw_hline(self, y: float, colour: str, dashed: bool) -> list[str]:
        sx, sy, (x0, _, x1, _) = self._scale
        return [f'<line x1="{x0}" y1="{float(sy(y)):.1f}" x2="{x1}" y2="{float(sy(y)):.1f}" '
                f"{self._stroke(colour, dashed, 1.2)}/>"]

    def _draw_vline(self, x: float, colour: str) -> list[str]:
        sx, _, (_, y0, _, y1) = self._scale
        return [f'<line x1="{float(sx(x)):.1f}" y1="{y0}" x2="{float(sx(x)):.1f}" y2="{y1}" '
                f"{self._stroke(colour, False, 0.8)}/>"]

    def _draw_bars(self, lefts: list[float], rights: list[float], heights: list[float], colour: str, opacity: float,
                   outline: bool) -> list[str]:
        sx, sy, _ = self._scale
        base = float(sy(0.0))
        if outline:  # a step outline, as matplotlib's histtype="step"
            points = [(float(sx(lefts[0])), base)]
            for left, right, height in zip(lefts, rights, heights):
                top = float(sy(height))
                points += [(float(sx(left)), top), (float(sx(right)), top)]
            points.append((float(sx(rights[-1])), base))
            text = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            return [f'<polyline points="{text}" {self._stroke(colour, False)}/>']
        out = []
        for left, right, height in zip(lefts, rights, heights):
            top = float(sy(height))
            out.append(f'<rect x="{float(sx(left)):.1f}" y="{min(top, base):.1f}" '
                       f'width="{float(sx(right) - sx(left)):.1f}" height="{abs(base - top):.1f}" fill="{colour}" '
                       f'fill-opacity="{opacity}"/>')
        return out

    def _draw_category_bars(self, values: list[float], low: list[float], high: list[float], inside: list[str] | None,
                            horizontal: bool) -> list[str]:
        sx, sy, _ = self._scale
        out = []
        for i, value in enumerate(values):
            if horizontal:
                left, right = sorted((float(sx(0.0)), float(sx(value))))
                top, bottom = float(sy(i + 0.4)), float(sy(i - 0.4))
                out.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{bottom - top:.1f}" '
                           f'fill="{COLOURS[0]}"/>')
                if low[i] or high[i]:
                    out.append(_error_bar(float(sx(value - low[i])), float(sx(value + high[i])), float(sy(i)),
                                          horizontal=True))
            else:
                left, right = float(sx(i - 0.4)), float(sx(i + 0.4))
                top, bottom = sorted((float(sy(value)), float(sy(0.0))))
                out.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{bottom - top:.1f}" '
                           f'fill="{COLOURS[0]}"/>')
                if inside:
                    out.append(f'<text x="{float(sx(i)):.1f}" y="{(top + bottom) / 2 + 3.5:.1f}" text-anchor="middle" '
                               f'fill="#ffffff" font-size="8">{_esc(inside[i])}</text>')
                if low[i] or high[i]:
                    out.append(_error_bar(float(sy(value - low[i])), float(sy(value + high[i])), float(sx(i)),
                                          horizontal=False))
        return out

    def _draw_scatter(self, xs: np.ndarray, ys: np.ndarray) -> list[str]:
        sx, sy, _ = self._scale
        return [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.7" fill="{COLOURS[0]}" fill-opacity="0.4"/>'
                for x, y in zip(sx(xs), sy(ys)) if math.isfinite(x) and math.isfinite(y)]

    def _draw_cells(self, matrix: np.ndarray) -> list[str]:
        sx, sy, _ = self._scale
        out = []
        most = max(float(matrix.max()), 1.0) if matrix.size else 1.0
        for (i, j), value in np.ndenumerate(matrix):
            left, top = float(sx(j - 0.5)), float(sy(i - 0.5))
            width, height = float(sx(j + 0.5)) - left, float(sy(i + 0.5)) - top
            top, height = (top + height, -height) if height < 0 else (top, height)
            out.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height:.1f}" '
                       f'fill="{_blue(value / most)}"/>')
            out.append(f'<text x="{float(sx(j)):.1f}" y="{float(sy(i)) + 3.5:.1f}" text-anchor="middle" '
                       f'fill="{"#ffffff" if value > most / 2 else "#000000"}">{value}</text>')
        return out

    def _draw_legend(self, where: str) -> list[str]:
        if not self._legend:
            return []
        _, _, (x0, y0, x1, y1) = self._scale
        width = 34 + 5.6 * max(len(label) for label, _, _ in self._legend)
        height = 6 + 14 * len(self._legend)
        left = x1 - width - 6 if "right" in where else (x0 + 6 if "left" in where else (x0 + x1 - width) / 2)
        top = y1 - height - 6 if "lower" in where else y0 + 6
        out = [f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height}" fill="#ffffff" '
               f'fill-opacity="0.85" stroke="#cccccc"/>']
        for i, (label, colour, dashed) in enumerate(self._legend):
            y = top + 10 + 14 * i
            out.append(f'<line x1="{left + 5:.1f}" y1="{y:.1f}" x2="{left + 25:.1f}" y2="{y:.1f}" '
                       f"{self._stroke(colour, dashed, 2)}/>")
            out.append(f'<text x="{left + 30:.1f}" y="{y + 3.5:.1f}">{_esc(label)}</text>')
        return out


def _error_bar(start: float, end: float, at: float, *, horizontal: bool) -> str:
    if horizontal:  # a bar from start to end at height `at`, with caps
        path = f"M{start:.1f},{at:.1f}H{end:.1f}M{start:.1f},{at - 3:.1f}v6M{end:.1f},{at - 3:.1f}v6"
    else:
        path = f"M{at:.1f},{start:.1f}V{end:.1f}M{at - 3:.1f},{start:.1f}h6M{at - 3:.1f},{end:.1f}h6"
    return f'<path d="{path}" fill="none" stroke="#444444" stroke-width="1"/>'


def _thinned(points: np.ndarray) -> np.ndarray:
    """The points, without each one that falls in the same half-pixel cell as the one before it (the
    first and last stay)."""
    if len(points) <= 2:
        return points
    cells = np.round(points * 2)
    keep = np.r_[True, (cells[1:] != cells[:-1]).any(axis=1)]
    keep[-1] = True
    return points[keep]


def _blue(share: float) -> str:
    """matplotlib's "Blues" colour map, approximately: white to dark blue."""
    low, high = np.array([247, 251, 255]), np.array([8, 48, 107])
    r, g, b = (low + (high - low) * min(max(share, 0.0), 1.0)).round().astype(int)
    return f"#{r:02x}{g:02x}{b:02x}"
