"""``mlci config check``: everything that can be known about a project without reading its data.

mlci.yaml and schema.yaml each parse and pass their own rules; the config's slices agree with the
schema; the estimator and its steps import and accept their parameters (checked against scikit-learn's
declared constraints, so ``alpha: -5`` is found here rather than after training has read the data).
"""

from __future__ import annotations

import os
from typing import Any

from mlci.core.config import Project
from mlci.core.consistency import check_against_schema
from mlci.core.dataschema import load_schema
from mlci.errors import ConfigError, ConfigIssue


def check_config(project: Project) -> dict[str, Any]:
    """Raise ``ConfigError`` listing every problem found; return what was checked."""
    schema_path = project.path(project.config.data.schema)
    schema = load_schema(schema_path, os.path.relpath(schema_path)) if schema_path.exists() else None
    issues: list[ConfigIssue] = []
    if schema is not None:
        issues += _issues_of(check_against_schema, project.config, schema, project.document)
    issues += _issues_of(_check_model, project)
    if issues:
        raise ConfigError(issues)
    return {"ok": True, "config": str(project.config_path), "project": project.config.project,
            "schema": str(schema_path) if schema else None}


def _check_model(project: Project) -> None:
    from mlci.ml.features import make_estimator, make_steps  # scikit-learn: only when checking

    model = project.config.model
    make_estimator(model.estimator, model.params, task=model.task, seed=model.seed, document=project.document)
    make_steps(model.steps, seed=model.seed, document=project.document)


def _issues_of(check: Any, *args: Any) -> list[ConfigIssue]:
    try:
        check(*args)
    except ConfigError as exc:
        return list(exc.issues)
    return []
