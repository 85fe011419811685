"""The one module that renders templates (Jinja2) from the ``mlci.templates`` package.

Templates live in the repository's top-level ``templates/`` folder, which ships inside the wheel as
``mlci.templates``; they are read through ``importlib.resources``, so an editable install and a wheel
in a fresh venv behave the same. HTML templates are autoescaped; everything else is not, so templates
of other languages must escape through their own filters (Jenkinsfiles: the ``groovy`` filter).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2

from mlci.core import jsonvalue
from mlci.core.summary import check_value

Filters = tuple[tuple[str, Callable[..., Any]], ...]  # (name, function) pairs a template may use


class _ResourceLoader(jinja2.BaseLoader):
    def get_source(self, environment: jinja2.Environment, template: str):
        node = resources.files("mlci.templates")
        for part in template.split("/"):
            if part in ("", ".", ".."):
                raise jinja2.TemplateNotFound(template)
            node = node / part
        if not node.is_file():
            raise jinja2.TemplateNotFound(template)
        return node.read_text(encoding="utf-8"), None, lambda: True


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else f"{value:,}"


def _signed(value: Any) -> str:
    return f"{value:+.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


@lru_cache(maxsize=8)
def _environment(filters: Filters = ()) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_ResourceLoader(),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["number"] = _number
    env.filters["json"] = lambda v: jsonvalue.dumps(v)
    env.filters["signed"] = _signed
    env.filters["check_value"] = check_value
    env.filters.update(dict(filters))
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``; unknown variables are errors, not blanks."""
    return _environment().get_template(template).render(**context)


def compile_template(template: str) -> None:
    """Compile ``templates/<template>`` now (the environment keeps it), so that a later ``render`` of it
    only renders: a command can do this while other threads work (``mlci validate``: during the parse)."""
    _environment().get_template(template)


def render_with(filters: Filters, template: str, **context: Any) -> str:
    """``render`` with extra template filters (``{{ value | name }}``), given by the caller: templates of
    another language bring their escaping filters (Jenkinsfiles: ``groovy``); nothing is registered globally."""
    return _environment(filters).get_template(template).render(**context)


def template_text(name: str) -> str:
    """The raw text of a template file (for files copied as they are, e.g. a .dockerignore)."""
    return (resources.files("mlci.templates") / name).read_text(encoding="utf-8")
