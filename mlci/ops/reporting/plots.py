"""Plot helpers for HTML reports: matplotlib figures rendered to inline SVG (no external files)."""

from __future__ import annotations

import io
from typing import Any


def new_figure(width: float = 4.5, height: float = 3.4) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def to_svg(fig: Any) -> str:
    """The figure as an inline ``<svg>`` element; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]
