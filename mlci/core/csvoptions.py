"""How CSV files are read (``data.csv`` of ``mlci.yaml``).

A module of its own, so that reading a file needs only this small section and not the whole project
config: ``mlci validate data.csv --schema schema.yaml`` outside a project never imports
``mlci.core.config``.
"""

from __future__ import annotations

from mlci.core.spec import opt, section


@section
class CsvOptions:
    """How CSV files are read."""

    delimiter: str = opt(",", help="field separator")
    encoding: str = opt("utf-8", help="text encoding")
    decimal: str = opt(".", help="decimal mark for numbers")


__all__ = ["CsvOptions"]
