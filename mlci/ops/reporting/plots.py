"""Plot helpers for HTML reports: matplotlib figures rendered to inline SVG that needs no CSS.

Jenkins serves published reports under ``style-src 'self'`` (DirectoryBrowserSupport.java's default
Content-Security-Policy), which blocks ``<style>`` elements and ``style=`` attributes. matplotlib's SVG
backend writes both, so a plot would lose every fill and stroke and render as a black box. ``to_svg``
rewrites each style declaration as the SVG presentation attribute of the same name (``fill``,
``stroke-width``, ...), which the policy does not touch and which the SVG spec gives the same meaning.
"""

from __future__ import annotations

import io
import re
from typing import Any

_STYLE_ATTRIBUTE = re.compile(r'\sstyle="([^"]*)"')
_STYLE_ELEMENT = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)
_UNIVERSAL_RULE = re.compile(r"\*\s*\{([^}]*)\}")
_NAME = re.compile(r"^[a-z-]+$")


def new_figure(width: float = 4.5, height: float = 3.4) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def to_svg(fig: Any) -> str:
    """The figure as an inline ``<svg>`` element without any CSS; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    if "<image" in text:  # a raster part (imshow, rasterized=True) is embedded as a data: URI
        raise ValueError("a report plot must be vector only: img-src 'self' blocks embedded images")
    return presentation_attributes(text[text.index("<svg"):])


def presentation_attributes(svg: str) -> str:
    """``svg`` with its ``style=`` attributes and ``<style>`` elements turned into presentation
    attributes. A ``<style>`` element may only hold a universal rule (``* {...}``, what matplotlib
    writes); its declarations go onto the root ``<svg>`` element, whence they inherit."""
    inherited = ""
    for block in _STYLE_ELEMENT.findall(svg):
        rules = _UNIVERSAL_RULE.findall(block)
        if _UNIVERSAL_RULE.sub("", block).strip():
            raise ValueError(f"unsupported rule in an SVG <style> element: {block.strip()[:80]}")
        inherited += "".join(_attributes(rule) for rule in rules)
    svg = _STYLE_ELEMENT.sub("", svg)
    svg = _STYLE_ATTRIBUTE.sub(lambda m: _attributes(m.group(1)), svg)
    return svg.replace("<svg", "<svg" + inherited, 1) if inherited else svg


def _attributes(declarations: str) -> str:
    out = []
    for declaration in declarations.split(";"):
        if not declaration.strip():
            continue
        name, _, value = declaration.partition(":")
        name, value = name.strip().lower(), value.strip()
        if not _NAME.match(name):
            raise ValueError(f"not a CSS property name in an SVG style: {name!r}")
        out.append(f' {name}="{value}"')
    return "".join(out)
