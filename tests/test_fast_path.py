"""The compiled scoring path: equal to the scikit-learn pipeline on the example's data (missing values,
unknown categories, mlci's own transformers, forests, linear models), and the pipeline kept whenever a
step is unknown or the compiled form does not verify."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder
from starlette.testclient import TestClient

from mlci.adapters.model_files import dump_model
from mlci.adapters.registry_store import ModelRegistry
from mlci.core.dataschema import load_schema, schema_to_dict
from mlci.ml.features import build_pipeline, feature_columns
from mlci.serve.app import create_app
from mlci.serve.compiled import Unsupported, compile_pipeline, verification_columns, verify
from mlci.serve.model import load_served_model
from mlci.serve.settings import ServeSettings
from mlci.serve.validation import RecordValidator
from tests.serving_support import (
    CATEGORIES,
    EXAMPLE,
    FEATURES,
    NUMERIC,
    WITHOUT_PANDAS,
    copy_example,
    fit_mlci_pipeline,
    fit_pipeline,
    holdout_records,
    pipeline_frame,
    register_version,
)

SCHEMA = load_schema(EXAMPLE / "schema.yaml")
TRAIN = pd.read_csv(EXAMPLE / "data" / "train.csv")
HOLDOUT = pd.read_csv(EXAMPLE / "data" / "holdout.csv")


def _records(rows: int = 60) -> list[dict]:
    """Holdout rows, with missing values in every nullable feature and categories the model never saw."""
    frame = HOLDOUT.drop(columns=["default"]).head(rows)
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    for index, record in enumerate(records):
        if index % 3 == 0:
            record.update(income=None, num_accounts=None, employment=None)
        if index % 4 == 1:
            record.update(employment="contractor", region="central")
    return records


def _serve(tmp_path: Path, pipeline: Pipeline, features: list[str], task: str = "binary"):
    record = {"task": task, "target": "default", "features": features, "schema": schema_to_dict(SCHEMA),
              "estimator": type(pipeline[-1]).__name__, "metrics": {}}
    registry = ModelRegistry(tmp_path / "registry")
    version = registry.register(record, {"model.skops": dump_model(pipeline)})["version"]
    return load_served_model(tmp_path / "registry", version)


def _columns(model) -> dict[str, list]:
    columns, problems = RecordValidator(model.schema, model.features,
                                        accept_unknown_categories=True).validate(_records())
    assert not problems
    return columns


def _assert_same_as_pipeline(model, columns, *, classifier: bool = True) -> None:
    assert model.compiled is not None, model.scoring_note
    expected_features = model.pipeline[0].transform(pipeline_frame(model, columns))
    if sparse.issparse(expected_features):
        expected_features = expected_features.toarray()
    np.testing.assert_allclose(model.compiled.features(columns), expected_features, rtol=0, atol=1e-9)
    method = model.pipeline.predict_proba if classifier else model.pipeline.predict
    np.testing.assert_allclose(model.compiled(columns), method(pipeline_frame(model, columns)), rtol=0, atol=1e-9)


@pytest.mark.parametrize("estimator", ["logistic", "forest"])
def test_compiled_path_equals_the_pipeline_with_missing_values_and_unknown_categories(tmp_path, estimator):
    model = _serve(tmp_path, fit_pipeline(TRAIN, estimator), FEATURES)
    columns = _columns(model)
    assert None in columns["income"] and "contractor" in columns["employment"]
    _assert_same_as_pipeline(model, columns)
    labels, probabilities = model.predict(columns)
    reference = model.pipeline.predict_proba(pipeline_frame(model, columns))
    assert labels == model.pipeline.classes_[reference.argmax(axis=1)].tolist()
    assert probabilities == np.round(reference, 6).tolist()


@pytest.mark.parametrize("estimator", [LogisticRegression(max_iter=500), ExtraTreesClassifier(n_estimators=20,
                                                                                              random_state=0)])
def test_mlci_preprocessing_with_booleans_and_date_parts_compiles(tmp_path, estimator):
    pipeline = build_pipeline(SCHEMA, estimator=estimator, datetime_parts=["year", "month", "dayofweek"])
    features = feature_columns(SCHEMA, ["year", "month", "dayofweek"])
    assert "has_guarantor" in features and "application_date" in features
    pipeline.fit(TRAIN[features], TRAIN["default"])
    model = _serve(tmp_path, pipeline, features)
    _assert_same_as_pipeline(model, _columns(model))


def test_regressors_compile(tmp_path):
    numeric = [n for n in NUMERIC if n != "income"]
    target = TRAIN["income"].fillna(TRAIN["income"].median())
    for estimator in (Ridge(alpha=1.0), RandomForestRegressor(n_estimators=20, random_state=0)):
        pipeline = fit_pipeline(TRAIN, "logistic")
        pipeline.steps[-1] = ("model", estimator)
        pipeline.steps[0][1].transformers[0] = ("num", pipeline.steps[0][1].transformers[0][1], numeric)
        features = numeric + CATEGORIES
        pipeline.fit(TRAIN[features], target)
        model = _serve(tmp_path / type(estimator).__name__, pipeline, features, task="regression")
        _assert_same_as_pipeline(model, _columns(model), classifier=False)


def test_a_forest_fitted_with_n_jobs_is_served_single_threaded(tmp_path):
    pipeline = fit_pipeline(TRAIN, "forest")
    pipeline[-1].set_params(n_jobs=-1)
    model = _serve(tmp_path, pipeline, FEATURES)
    assert model.pipeline[-1].n_jobs == 1


def test_an_unknown_step_keeps_the_pipeline_and_still_serves(tmp_path):
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", MinMaxScaler())])
    categories = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                           ("onehot", OneHotEncoder(handle_unknown="ignore"))])
    pipeline = Pipeline([("preprocess", ColumnTransformer([("num", numeric, NUMERIC), ("cat", categories,
                                                                                       CATEGORIES)])),
                         ("model", LogisticRegression(max_iter=500))]).fit(TRAIN[FEATURES], TRAIN["default"])
    model = _serve(tmp_path, pipeline, FEATURES)
    assert model.compiled is None and "MinMaxScaler" in model.scoring_note
    with TestClient(create_app(ServeSettings(registry=tmp_path / "registry"), load_in_background=False)) as client:
        client.app.state.server.load()
        assert client.get("/version").json()["scoring"] == "pipeline"
        answer = client.post("/predict", json=_records(5))
        assert answer.status_code == 200
        expected = pipeline.predict_proba(pipeline_frame(model, _columns(model))[:5])
        assert answer.json()["probabilities"] == np.round(expected, 6).tolist()


def _minmax_pipeline() -> tuple[Pipeline, list[str]]:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", MinMaxScaler())])
    pipeline = Pipeline([("preprocess", ColumnTransformer([("num", numeric, NUMERIC), ("cat", OneHotEncoder(
        handle_unknown="ignore"), CATEGORIES)], transformer_weights={"cat": 0.5})),
                         ("model", LogisticRegression(max_iter=500))])
    return pipeline.fit(TRAIN[FEATURES], TRAIN["default"]), FEATURES


_PIPELINES = {"hand-built": lambda: (fit_pipeline(TRAIN, "forest"), FEATURES),
              "mlci": lambda: fit_mlci_pipeline(TRAIN, "mlci"),
              "mlci+pca": lambda: fit_mlci_pipeline(TRAIN, "mlci+pca"),
              "weighted one-hot": _minmax_pipeline}


@pytest.mark.parametrize("kind", list(_PIPELINES))
def test_the_pipeline_path_on_arrays_equals_the_pipeline_on_a_dataframe(tmp_path, kind):
    """The path without pandas (positional column selection) scores as the pipeline does on the
    DataFrame it was trained on, on the example's rows and on rows covering every case of the schema."""
    import warnings

    pipeline, features = _PIPELINES[kind]()
    model = _serve(tmp_path, pipeline, features)
    for columns in (_columns(model), verification_columns(model.schema, model.features, rows=200, seed=3)):
        frame = pipeline_frame(model, columns)
        expected = pipeline[0].transform(frame)
        got = model.scorer.features(columns)
        assert sparse.issparse(got) == sparse.issparse(expected)
        dense = (lambda m: m.toarray()) if sparse.issparse(got) else np.asarray
        np.testing.assert_array_equal(dense(got), dense(expected))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", append=True)  # after the one filter the path installs
            scores = model.scorer(columns)
        assert [str(w.message) for w in caught] == []
        np.testing.assert_array_equal(scores, pipeline.predict_proba(frame))
    assert model.scorer.array(columns).shape == (len(columns[features[0]]), len(features))


def test_the_server_scores_both_paths_without_pandas(tmp_path):
    """The serving image has no pandas: with pandas and matplotlib made unimportable, the server loads
    and answers /predict on the compiled path and on the pipeline path, as the pipeline does."""
    import json
    import subprocess
    import sys

    from mlci.core.config import load_project

    project = copy_example(tmp_path)
    versions = {kind: register_version(project, kind)["version"] for kind in ("mlci", "mlci+pca")}
    registry = load_project(project).registry_dir
    records = holdout_records(project, rows=20)
    records[0].update(income=None, employment=None, application_date="2024-02-29T23:30:00-05:00")
    records[1].update(region="central", application_date="2025-06-15")
    script = WITHOUT_PANDAS + f"""
import json
from starlette.testclient import TestClient
from mlci.serve.app import create_app
from mlci.serve.settings import ServeSettings
answers = {{}}
for kind, version in {versions!r}.items():
    app = create_app(ServeSettings(registry={str(registry)!r}, model=str(version)),
                     load_in_background=False)
    with TestClient(app) as client:
        client.app.state.server.load()
        answers[kind] = [client.get("/version").json()["scoring"],
                         client.post("/predict", json=json.loads(sys.argv[1])).json()]
assert "pandas" not in sys.modules
print(json.dumps(answers))
"""
    done = subprocess.run([sys.executable, "-c", script, json.dumps(records)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert answers["mlci"][0] == "compiled" and answers["mlci+pca"][0] == "pipeline"
    for kind in versions:
        model = load_served_model(registry, versions[kind])
        columns, problems = model_validator(model).validate(records)
        assert not problems
        expected = model.pipeline.predict_proba(pipeline_frame(model, columns))
        assert answers[kind][1]["probabilities"] == np.round(expected, 6).tolist()


def model_validator(model) -> RecordValidator:
    return RecordValidator(model.schema, model.features, accept_unknown_categories=True)


def test_an_encoder_that_errors_on_unknown_categories_is_not_compiled():
    pipeline = fit_pipeline(TRAIN, "logistic")
    pipeline[0].transformers_[1][1].named_steps["onehot"].handle_unknown = "error"
    with pytest.raises(Unsupported, match="handle_unknown='error'"):
        compile_pipeline(pipeline, set(NUMERIC), classifier=True)


def test_verification_refuses_a_compiled_form_that_differs_from_the_pipeline(tmp_path):
    model = _serve(tmp_path, fit_pipeline(TRAIN, "logistic"), FEATURES)
    compiled = compile_pipeline(model.pipeline, set(NUMERIC), classifier=True)
    columns = verification_columns(model.schema, model.features)
    verify(compiled, model.scorer, columns)
    scaler = model.pipeline[0].named_transformers_["num"].named_steps["scale"]
    scaler.mean_ = scaler.mean_ + 1e-6 * scaler.scale_  # the pipeline changes after compiling
    with pytest.raises(Unsupported, match="compiled features differ"):
        verify(compiled, model.scorer, columns)


def test_verification_rows_cover_missing_values_unknown_categories_and_every_allowed_value():
    columns = verification_columns(SCHEMA, FEATURES)
    assert None in columns["income"] and None not in columns["age"]  # only where the schema allows it
    assert set(columns["region"]) == {"north", "south", "east", "west", "__unseen__"}
    assert set(columns["loan_term"]) == {12, 24, 36, 48, 60}
    assert min(columns["credit_score"]) >= 300 and max(columns["credit_score"]) <= 850


# -- batch validation: the column-wise check and the record-by-record one agree ---------------------

# Per field, values that break one rule each (type, NaN or infinity, bounds, allowed values, pattern, dates).
_BAD_VALUES = {
    "customer_id": ["X1", 12, None], "age": [17, 101, 30.5, "41", True, float("nan")],
    "income": [-1, float("inf"), "high", [1]], "loan_amount": [None, -0.01, False],
    "loan_term": [13, 12.5, "12"], "credit_score": [299, 851, None],
    "debt_ratio": [2.01, float("-inf"), {}], "num_accounts": [-1, 1.5, float("nan")],
    "region": ["central", 3, None, float("nan")], "employment": ["contractor", True, 2.5, [None]],
    "home_ownership": ["rented", None], "has_guarantor": ["yes", 1, 0.0, None],
    "application_date": ["2019-12-31", "2031-01-01", "31/12/2024", 20240101, None],
}


def _validators() -> list[RecordValidator]:
    features = [c for c in SCHEMA.features if c in FEATURES + ["has_guarantor", "application_date"]]
    return [RecordValidator(SCHEMA, features, accept_unknown_categories=accept) for accept in (True, False)]


def _both_paths(validator: RecordValidator, records: list) -> tuple:
    columns, problems = validator.validate(records)
    slow_columns, slow_problems = validator._validate_records(records)
    return (columns, [p.to_dict() for p in problems]), (slow_columns, [p.to_dict() for p in slow_problems])


def _mixed_batches(seed: int = 0, batches: int = 300) -> list[list]:
    rng = np.random.default_rng(seed)
    good = _records(40)
    out = []
    for _ in range(batches):
        records = [dict(good[i]) for i in rng.integers(0, len(good), int(rng.integers(1, 12)))]
        for _ in range(int(rng.integers(0, 3))):  # zero, one or two broken values
            record = records[int(rng.integers(0, len(records)))]
            field = list(_BAD_VALUES)[int(rng.integers(0, len(_BAD_VALUES)))]
            values = _BAD_VALUES[field]
            record[field] = values[int(rng.integers(0, len(values)))]
        if rng.random() < 0.05:
            records[0] = {**records[0], "default": 1} if rng.random() < 0.5 else {**records[0], "extra": 1}
        if rng.random() < 0.03:
            records.append(["not", "an", "object"])
        if rng.random() < 0.05:
            records[-1].pop("age", None)  # a required field left out
        out.append(records)
    return out


def test_column_wise_validation_gives_the_same_columns_and_errors_as_the_record_checks():
    batches = _mixed_batches()
    assert sum(not RecordValidator(SCHEMA, FEATURES, accept_unknown_categories=True).validate(b)[1]
               for b in batches) > 50  # both valid and invalid batches are exercised
    for validator in _validators():
        for records in batches:
            fast, slow = _both_paths(validator, records)
            assert fast == slow, records
            assert (validator._valid_columns(records) is None) == bool(slow[1])  # valid batches go column-wise


def test_column_wise_validation_accepts_every_kind_of_valid_value():
    validator = RecordValidator(SCHEMA, FEATURES, accept_unknown_categories=False)
    records = [{**_records(1)[0], "age": 40.0, "loan_term": 12.0, "income": 0, "debt_ratio": 2,
                "application_date": "2025-06-15T13:45:00Z", "has_guarantor": True, "employment": None},
               {**_records(2)[1], "region": "west", "employment": "retired"}]
    assert validator._valid_columns(records) is not None
    fast, slow = _both_paths(validator, records)
    assert fast == slow and not fast[1]


def test_extra_fields_take_the_column_path_only_when_the_schema_allows_them():
    permissive = type(SCHEMA)(**{**SCHEMA.__dict__, "allow_extra_columns": True})
    records = [{**record, "note": "free text"} for record in _records(5)]
    assert RecordValidator(permissive, FEATURES, accept_unknown_categories=True)._valid_columns(records) is not None
    assert RecordValidator(SCHEMA, FEATURES, accept_unknown_categories=True)._valid_columns(records) is None
    target = [{**record, "default": 0} for record in _records(5)]
    assert RecordValidator(permissive, FEATURES, accept_unknown_categories=True)._valid_columns(target) is None
