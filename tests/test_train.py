"""mlci train: bad input gives one line, the documented exit code and an unchanged registry; training is
seeded; preprocessing copes with unknown categories, missing values and datetime parts."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from mlci.core.config import load_project
from mlci.ops.model.registry import load_version_model
from tests.model_projects import write_project


def edit(root, change):
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    change(config)
    (root / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.mark.parametrize("change,message", [
    (lambda c: c["model"].update(estimator="sklearn.linear_model.NoSuchModel"), "has no class 'NoSuchModel'"),
    (lambda c: c["model"].update(estimator="nosuchpackage.Model"), "cannot import module 'nosuchpackage'"),
    (lambda c: c["model"].update(estimator="collections.OrderedDict"), "not a scikit-learn compatible estimator"),
    (lambda c: c["model"].update(estimator="sklearn.linear_model.Ridge"), "is not a classifier"),
    (lambda c: c["model"].update(params={"no_such_param": 1}), "does not accept these parameters"),
    (lambda c: c["model"].update(metrics=["rmse"]), "'rmse' is not a binary metric"),
    (lambda c: c["model"].update(steps=[{"name": "select", "transformer": "sklearn.linear_model.Ridge"}]),
     "model.steps[0].transformer: 'sklearn.linear_model.Ridge' is not a scikit-learn compatible transformer"),
    (lambda c: c["model"].update(steps=[{"name": "pca", "transformer": "sklearn.decomposition.PCA",
                                         "params": {"n_compnents": 2}}]),
     "model.steps[0].params: PCA does not accept these parameters"),
])
def test_bad_config_is_one_line_exit_2_registry_unchanged(tmp_path, run_cli, change, message):
    root = write_project(tmp_path / "p")
    edit(root, change)
    code, out, err = run_cli("-C", root, "train")
    assert code == 2, err
    assert message in err and "mlci.yaml:" in err and "model." in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not (root / ".mlci").exists()


def test_target_missing_from_data(tmp_path, run_cli):
    root = write_project(tmp_path / "p")
    frame = pd.read_csv(root / "data/train.csv", dtype=str, keep_default_na=False).drop(columns=["default"])
    frame.to_csv(root / "data/train.csv", index=False)
    schema = yaml.safe_load((root / "schema.yaml").read_text())
    schema["allow_extra_columns"] = True
    (root / "schema.yaml").write_text(yaml.safe_dump(schema))
    code, _, err = run_cli("-C", root, "train")
    assert code == 2 and "target column 'default' is missing" in err
    assert not (root / ".mlci").exists()


def test_multiclass_metric_on_binary_task_hint(tmp_path, run_cli):
    root = write_project(tmp_path / "p", task="multiclass", metrics=["f1"])
    code, _, err = run_cli("-C", root, "train")
    assert code == 2 and "use f1_macro or f1_weighted" in err


def test_training_is_seeded_and_recorded(tmp_path, run_cli):
    root = write_project(tmp_path / "p", estimator="sklearn.ensemble.RandomForestClassifier",
                         params={"n_estimators": 20})
    code, out, err = run_cli("-C", root, "--json", "train")
    assert code == 0, err
    first = json.loads(out)
    assert "cross-validation: 3/3 folds" in err
    assert set(first["cv"]) == {"roc_auc", "accuracy", "f1"}
    assert 0.5 < first["cv"]["roc_auc"]["mean"] < 1 and first["cv"]["roc_auc"]["std"] > 0
    second = json.loads(run_cli("-C", root, "--json", "train")[1])
    assert second["cv"] == first["cv"] and second["version"] == 2
    project = load_project(root)
    model_a, record = load_version_model(project, 1)
    model_b, _ = load_version_model(project, 2)
    assert record.record["estimator"]["params"]["random_state"] == 42  # the project seed
    assert record.train.rows == 600 and len(record.train.sha256) == 64
    assert record.features[0] == "age" and "customer_id" not in record.features
    assert record.schema["target"] == "default" and record.record["libraries"]["skops"]
    rows = pd.read_csv(root / "data/holdout.csv")
    assert (model_a.predict_proba(rows) == model_b.predict_proba(rows)).all()


def test_unknown_categories_missing_values_and_datetime_parts(tmp_path):
    root = write_project(tmp_path / "p", extra={})
    edit(root, lambda c: c["model"].update(datetime_parts=["month", "dayofweek"], cv_folds=0))
    from mlci.ops.model.train import train

    result = train(project=load_project(root), quiet=True)
    assert "application_date" in result.record["features"]
    model, _ = load_version_model(load_project(root), result.version)
    rows = pd.read_csv(root / "data/holdout.csv").head(3)
    rows.loc[0, "region"] = "atlantis"          # never seen in training
    rows.loc[1, "employment"] = None
    rows.loc[2, "income"] = None
    rows["has_guarantor"] = rows["has_guarantor"].astype(str)
    proba = model.predict_proba(rows)
    assert proba.shape == (3, 2) and ((proba >= 0) & (proba <= 1)).all()


def test_holdout_split_when_no_holdout_file(tmp_path, run_cli):
    root = write_project(tmp_path / "p")
    edit(root, lambda c: c["data"].pop("holdout"))
    assert run_cli("-C", root, "train")[0] == 0
    record = json.loads((root / ".mlci/registry/versions/v1/version.json").read_text())
    assert record["data"]["train"]["rows"] == 480 and record["data"]["holdout"]["rows"] == 120
    assert record["data"]["holdout"]["split"] == {"fraction": 0.2, "seed": 42, "part": "holdout"}
    code, out, _ = run_cli("-C", root, "--json", "evaluate")
    assert code == 0 and json.loads(out)["details"]["holdout"]["rows"] == 120


def test_configured_steps_make_a_pipeline_with_the_estimator(tmp_path, run_cli):
    root = write_project(tmp_path / "p")
    edit(root, lambda c: c["model"].update(steps=[
        {"name": "select", "transformer": "sklearn.feature_selection.SelectKBest", "params": {"k": 5}},
        {"name": "pca", "transformer": "sklearn.decomposition.PCA", "params": {"n_components": 3}}]))
    code, _, err = run_cli("-C", root, "train")
    assert code == 0, err
    model, record = load_version_model(load_project(root), "latest")
    assert [name for name, _ in model.steps] == ["preprocess", "select", "pca", "model"]
    assert model.named_steps["pca"].n_components_ == 3 and model.named_steps["pca"].random_state == 42
    assert [(s["name"], s["transformer"], s["params"]["k"] if "k" in s["params"] else s["params"]["n_components"])
            for s in record.record["estimator"]["steps"]] == [("select", "sklearn.feature_selection.SelectKBest", 5),
                                                       ("pca", "sklearn.decomposition.PCA", 3)]
    code, _, err = run_cli("-C", root, "evaluate")
    assert code == 0, err


def test_step_names_must_be_free(tmp_path, run_cli):
    root = write_project(tmp_path / "p")
    edit(root, lambda c: c["model"].update(steps=[
        {"name": "model", "transformer": "sklearn.decomposition.PCA"}]))
    code, _, err = run_cli("-C", root, "train")
    assert code == 2 and "model.steps[0].name: step name 'model' is taken" in err
