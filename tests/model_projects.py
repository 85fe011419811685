"""Small, fast model projects for the lifecycle tests: binary, multiclass and regression."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mlci.ops.project.example import credit_data

CREDIT_SCHEMA = {
    "columns": {
        "customer_id": {"type": "string", "nullable": False, "feature": False},
        "age": {"type": "integer", "nullable": False}, "income": {"type": "float"},
        "loan_amount": {"type": "float", "nullable": False}, "loan_term": {"type": "integer", "nullable": False},
        "credit_score": {"type": "integer", "nullable": False}, "debt_ratio": {"type": "float", "nullable": False},
        "num_accounts": {"type": "integer"},
        "region": {"type": "category", "nullable": False}, "employment": {"type": "category"},
        "home_ownership": {"type": "category", "nullable": False},
        "has_guarantor": {"type": "boolean", "nullable": False},
        "application_date": {"type": "datetime", "nullable": False},
        "default": {"type": "integer", "nullable": False},
    },
    "target": "default",
}


def write_project(root: Path, *, task: str = "binary", estimator: str | None = None, params: dict | None = None,
                  rows: int = 600, holdout_rows: int = 300, gates: dict | None = None, metrics: list | None = None,
                  extra: dict | None = None) -> Path:
    """A project directory with mlci.yaml, schema.yaml and data for ``task``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    train, holdout, schema = _data(task, rows, holdout_rows)
    train.to_csv(root / "data/train.csv", index=False)
    holdout.to_csv(root / "data/holdout.csv", index=False)
    (root / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    default_estimator = {"binary": "sklearn.linear_model.LogisticRegression",
                         "multiclass": "sklearn.linear_model.LogisticRegression",
                         "regression": "sklearn.linear_model.Ridge"}[task]
    config = {
        "project": f"test-{task}",
        "data": {"train": "data/train.csv", "holdout": "data/holdout.csv", "schema": "schema.yaml"},
        "model": {"task": task, "estimator": estimator or default_estimator,
                  "params": params if params is not None else ({"max_iter": 500} if task != "regression" else {}),
                  "cv_folds": 3, **({"metrics": metrics} if metrics else {})},
        "evaluation": {"slices": ["region"], "latency_rows": 5},
        "gates": gates or {"rules": []},
        **(extra or {}),
    }
    (root / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _data(task: str, rows: int, holdout_rows: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    train, holdout = credit_data(rows, seed=11), credit_data(holdout_rows, seed=12)
    schema = yaml.safe_load(yaml.safe_dump(CREDIT_SCHEMA))
    if task == "binary":
        return train, holdout, schema
    if task == "multiclass":
        for frame in (train, holdout):
            frame["risk"] = pd.cut(frame["credit_score"], [0, 620, 720, 900], labels=["high", "medium",
                                                                                      "low"]).astype(str)
        schema["columns"]["risk"] = {"type": "category", "nullable": False}
        schema["columns"]["credit_score"]["feature"] = False
        schema["target"] = "risk"
        return train, holdout, schema
    for frame, seed in ((train, 1), (holdout, 2)):
        noise = np.random.default_rng(seed).normal(0, 2000, len(frame))
        frame["loan_amount"] = (0.15 * frame["income"].fillna(40000).astype(float) + 20 * frame["age"] + noise).round(2)
    schema["target"] = "loan_amount"
    schema["columns"]["default"]["feature"] = True
    return train, holdout, schema
