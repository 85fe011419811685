"""The champion comparison uses only rows that neither model trained on.

Each scenario trains a champion that memorises its training rows (a fully grown decision tree: 100%
accuracy on any row it saw), promotes it, then changes what the holdout is (a training file that grew, a
new seed, a new holdout fraction) and trains and evaluates a challenger. Re-scoring the champion on all
of the challenger's holdout rows, as the gate once did, inflates it; the gate must compare on the rows
outside the champion's training set, which the test computes independently from the split definition
and the rows' unique ``uid`` values.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.model_selection import train_test_split

from mlci.adapters.registry_store import ModelRegistry
from mlci.core.config import load_project
from mlci.ml import row_identity
from mlci.ops.model.registry import load_version_model
from mlci.ops.model.train import holdout_dataset, project_schema

RULES = [{"metric": "accuracy", "max_drop": 0.0},
         {"metric": "accuracy", "max_drop": 0.0, "bootstrap": True}]


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    """A noisy binary problem; ``uid`` (a feature) makes every row unique, so a row's identity is known."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    label = ((x1 + 0.5 * x2 + rng.normal(0, 1.0, rows)) > 0).astype(int)
    return pd.DataFrame({"uid": rng.random(rows), "x1": x1.round(6), "x2": x2.round(6), "label": label})


def split_project(root, frame: pd.DataFrame, *, seed=0, fraction=0.3):
    root.mkdir(parents=True, exist_ok=True)
    frame.to_csv(root / "train.csv", index=False)
    schema = {"columns": {"uid": {"type": "float"}, "x1": {"type": "float"}, "x2": {"type": "float"},
                          "label": {"type": "integer"}}, "target": "label"}
    (root / "schema.yaml").write_text(yaml.safe_dump(schema))
    configure(root, seed=seed, fraction=fraction)
    return root


def configure(root, *, seed, fraction):
    config = {"project": "unseen",
              "data": {"train": "train.csv", "schema": "schema.yaml", "holdout_fraction": fraction},
              "model": {"task": "binary", "estimator": "sklearn.tree.DecisionTreeClassifier", "seed": seed,
                        "cv_folds": 0},
              "evaluation": {"latency_rows": 3},
              "gates": {"rules": RULES, "bootstrap_samples": 200}}
    (root / "mlci.yaml").write_text(yaml.safe_dump(config))


def rows_of_split(frame: pd.DataFrame, *, seed, fraction, part):
    """The rows the product's split puts in ``part`` (the definition in DESIGN: a seeded stratified
    train_test_split of the file's row positions)."""
    fit, hold = train_test_split(np.arange(len(frame)), test_size=fraction, random_state=seed,
                                 stratify=frame["label"])
    return frame.iloc[fit if part == "train" else hold]


def champion_then_challenger(run_cli, root, change):
    """Train, evaluate and promote v1; apply ``change``; train and evaluate v2; gate (JSON)."""
    for args in (("train",), ("evaluate",), ("registry", "promote", "1", "--to", "production")):
        code, _, err = run_cli("-C", root, *args)
        assert code == 0, err
    change()
    for args in (("train",), ("evaluate",)):
        code, _, err = run_cli("-C", root, *args)
        assert code == 0, err
    return run_cli("-C", root, "--json", "gate")


def accuracy_of_champion(root, rows: pd.DataFrame) -> float:
    project = load_project(root)
    model, record = load_version_model(project, 1)
    return float((model.predict(rows[list(record.features)]) == rows["label"].to_numpy()).mean())


def check_honest_comparison(root, code, out, champion_train: pd.DataFrame, challenger_holdout: pd.DataFrame):
    report = json.loads(out)
    unseen = challenger_holdout[~challenger_holdout["uid"].isin(champion_train["uid"])]
    seen = challenger_holdout[challenger_holdout["uid"].isin(champion_train["uid"])]
    assert len(seen) > 0, "the scenario must put champion training rows into the challenger's holdout"
    comparison = report["details"]["comparison"]
    assert comparison["rows"] == len(unseen)
    assert comparison["holdout_rows"] == len(challenger_holdout)
    assert comparison["champion_trained"] == len(seen)
    # the champion's score is its accuracy on exactly the unseen rows ...
    honest = accuracy_of_champion(root, unseen)
    inflated = accuracy_of_champion(root, challenger_holdout)
    champion_checks = [c for c in report["checks"] if c.get("group") == "champion"]
    assert len(champion_checks) == 2
    for check in champion_checks:
        assert check["details"]["champion"] == pytest.approx(honest)
        assert check["details"]["compared_rows"] == len(unseen)
        assert isinstance(check["passed"], bool)
    # ... while the old re-scoring on every holdout row would have inflated it (seen rows: 100%)
    assert accuracy_of_champion(root, seen) == 1.0
    assert inflated > honest + 0.05
    # the challenger is judged on the same rows: its paired value is its accuracy there
    project = load_project(root)
    model, record = load_version_model(project, 2)
    challenger_on_unseen = float((model.predict(unseen[list(record.features)]) == unseen["label"].to_numpy()).mean())
    assert champion_checks[0]["details"]["challenger"] == pytest.approx(challenger_on_unseen)
    assert champion_checks[1]["details"]["resamples"] == 200
    assert code == (0 if all(c["passed"] for c in report["checks"]) else 1)
    return report


def test_growing_training_file_compares_on_rows_outside_the_champions_training(tmp_path, run_cli):
    first = synthetic(400, seed=1)
    root = split_project(tmp_path / "p", first)
    grown = pd.concat([first, synthetic(400, seed=2)], ignore_index=True)
    code, out, err = champion_then_challenger(run_cli, root, lambda: grown.to_csv(root / "train.csv", index=False))
    assert code in (0, 1), err
    check_honest_comparison(root, code, out, rows_of_split(first, seed=0, fraction=0.3, part="train"),
                            rows_of_split(grown, seed=0, fraction=0.3, part="holdout"))


def test_changed_seed_compares_on_rows_outside_the_champions_training(tmp_path, run_cli):
    data = synthetic(700, seed=3)
    root = split_project(tmp_path / "p", data, seed=0)
    code, out, err = champion_then_challenger(run_cli, root, lambda: configure(root, seed=1, fraction=0.3))
    assert code in (0, 1), err
    check_honest_comparison(root, code, out, rows_of_split(data, seed=0, fraction=0.3, part="train"),
                            rows_of_split(data, seed=1, fraction=0.3, part="holdout"))


def test_changed_holdout_fraction_compares_on_rows_outside_the_champions_training(tmp_path, run_cli):
    data = synthetic(600, seed=4)
    root = split_project(tmp_path / "p", data, fraction=0.2)
    code, out, err = champion_then_challenger(run_cli, root, lambda: configure(root, seed=0, fraction=0.4))
    assert code in (0, 1), err
    check_honest_comparison(root, code, out, rows_of_split(data, seed=0, fraction=0.2, part="train"),
                            rows_of_split(data, seed=0, fraction=0.4, part="holdout"))


def test_console_and_junit_say_the_champion_was_rescored_and_on_how_many_rows(tmp_path, run_cli):
    data = synthetic(700, seed=5)
    root = split_project(tmp_path / "p", data, seed=0)
    code, out, err = champion_then_challenger(run_cli, root, lambda: configure(root, seed=1, fraction=0.3))
    rows = json.loads(out)["details"]["comparison"]["rows"]
    code, out, err = run_cli("-C", root, "gate")
    assert code in (0, 1), err
    assert f"champion v1 re-scored: compared on {rows} of 210 holdout rows" in out
    suite = ET.parse(root / "reports/gate.junit.xml").getroot().find("testsuite")
    cases = [c for c in suite.iter("testcase") if c.get("classname", "").endswith(".champion")]
    assert len(cases) == 2
    for case in cases:
        assert json.loads(case.find("system-out").text)["compared_rows"] == rows
        failure = case.find("failure")
        if failure is not None:
            assert f"compared on {rows} of 210" in failure.get("message")


def test_too_few_unseen_rows_refuses_with_exit_2(tmp_path, run_cli):
    data = synthetic(120, seed=6)   # holdout 36 rows; about 30% of them unseen by the champion: < 30
    root = split_project(tmp_path / "p", data, seed=0)
    code, out, err = champion_then_challenger(run_cli, root, lambda: configure(root, seed=1, fraction=0.3))
    assert code == 2, err
    assert "cannot compare with champion v1: only" in err and "at least 30 needed" in err
    assert "data.holdout" in err and "Traceback" not in err
    assert len([line for line in err.strip().splitlines() if line.startswith("mlci: error")]) == 1


def test_champion_without_training_row_record_refuses_with_exit_2(tmp_path, run_cli):
    """A champion registered by the previous release has no training-row record: no guessing."""
    data = synthetic(700, seed=7)
    root = split_project(tmp_path / "p", data, seed=0)

    def forget_rows_and_reseed():
        registry = ModelRegistry(root / ".mlci/registry")

        def as_previous_release(record):
            record["data"]["train"].pop("row_identity")
            record["artifacts"].pop(row_identity.TRAIN_ROWS_FILE)
        registry.update(1, as_previous_release)
        configure(root, seed=1, fraction=0.3)

    code, out, err = champion_then_challenger(run_cli, root, forget_rows_and_reseed)
    assert code == 2, err
    assert "no record of which rows it trained on" in err and "re-train the champion" in err
    assert "Traceback" not in err


def test_same_holdout_needs_no_rescoring(tmp_path, run_cli):
    data = synthetic(500, seed=8)
    root = split_project(tmp_path / "p", data)
    code, out, err = champion_then_challenger(run_cli, root, lambda: None)
    report = json.loads(out)
    assert report["details"]["comparison"] is None and report["details"]["notes"] == []
    assert all(c["passed"] is True for c in report["checks"])   # the same model, the same rows: Δ = 0


@pytest.mark.parametrize("shuffle_seed", [0, 1, 2])
def test_fingerprints_ignore_row_order_and_spelling_but_not_content(shuffle_seed):
    frame = synthetic(300, seed=9)
    columns = row_identity.identity_columns(["uid", "x1", "x2"], "label")
    trained = row_identity.fingerprint_set(frame, columns)
    shuffled = frame.sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True)
    assert np.array_equal(row_identity.fingerprint_set(shuffled, columns), trained)
    as_float = shuffled.assign(label=shuffled["label"].astype(float))   # 1 and 1.0 are the same value
    assert row_identity.seen_mask(row_identity.row_fingerprints(as_float, columns), trained).all()
    changed = shuffled.assign(x1=shuffled["x1"] + 1e-6)
    assert not row_identity.seen_mask(row_identity.row_fingerprints(changed, columns), trained).any()
    duplicated = pd.concat([frame, frame.iloc[:50]], ignore_index=True)
    assert row_identity.fingerprint_set(duplicated, columns).size == 300
    round_trip = row_identity.from_bytes(row_identity.to_bytes(trained), "test")
    assert round_trip.dtype == np.uint64 and np.array_equal(round_trip, trained)


def test_holdout_rows_are_read_the_way_the_product_reads_them(tmp_path):
    """The split the tests reproduce is the product's split (guards the independent computation above)."""
    data = synthetic(200, seed=10)
    root = split_project(tmp_path / "p", data, seed=3, fraction=0.25)
    project = load_project(root)
    holdout = holdout_dataset(project, project_schema(project))
    expected = rows_of_split(data, seed=3, fraction=0.25, part="holdout")
    assert np.allclose(holdout.frame["uid"].to_numpy(), expected["uid"].to_numpy())


def test_fixed_holdout_file_the_champion_trained_on_is_compared_on_its_unseen_rows(tmp_path, run_cli):
    """Same holdout file for both, but the champion's training file held half of its rows."""
    train, holdout = synthetic(500, seed=11), synthetic(240, seed=12)
    root = split_project(tmp_path / "p", pd.concat([train, holdout.iloc[:120]], ignore_index=True))
    holdout.to_csv(root / "holdout.csv", index=False)
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    config["data"]["holdout"] = "holdout.csv"
    (root / "mlci.yaml").write_text(yaml.safe_dump(config))
    code, out, err = champion_then_challenger(run_cli, root, lambda: train.to_csv(root / "train.csv", index=False))
    assert code in (0, 1), err
    report = check_honest_comparison(root, code, out, pd.concat([train, holdout.iloc[:120]]), holdout)
    assert report["details"]["comparison"]["rows"] == 120


def test_files_mode_refuses_metrics_files_of_different_holdout_rows(tmp_path, run_cli):
    """Files-only mode has no model to re-score: two different holdouts cannot be compared honestly."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "mlci.yaml").write_text(yaml.safe_dump({"project": "files", "data": {"train": "train.csv"},
                                                    "model": {"task": "binary",
                                                              "estimator": "sklearn.linear_model.LogisticRegression"},
                                                    "gates": {"rules": [{"metric": "accuracy", "max_drop": 0.0}]}}))

    def metrics_file(name, seed):
        holdout = {"path": "train.csv", "sha256": "ab" * 32, "rows": 100,
                   "split": {"fraction": 0.3, "seed": seed, "part": "holdout"}}
        path = tmp_path / name
        path.write_text(json.dumps({"metrics": {"accuracy": 0.8}, "holdout": holdout}))
        return path

    code, _, err = run_cli("-C", root, "gate", "--metrics", metrics_file("new.json", 1),
                           "--baseline", metrics_file("old.json", 0))
    assert code == 2 and "were evaluated on different holdout rows" in err and "data.holdout" in err
    code, out, err = run_cli("-C", root, "--json", "gate", "--metrics", metrics_file("new.json", 0),
                             "--baseline", metrics_file("old.json", 0))
    assert code == 0 and json.loads(out)["checks"][0]["passed"] is True


def random_table(rng, rows):
    """Rows of every column type the schema knows, with missing values, read back by the product."""
    frame = pd.DataFrame({
        "n": rng.integers(-5, 5, rows),
        "f": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows).round(rng.integers(0, 8))),
        "c": rng.choice(["a", "b", "é", "x y", ""], rows),
        "b": rng.choice([True, False], rows),
        "d": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), unit="D"),
        "t": rng.integers(0, 2, rows),
    })
    frame.loc[rng.random(rows) < 0.1, "c"] = None
    return frame


TABLE_SCHEMA = {"columns": {"n": {"type": "integer"}, "f": {"type": "float"}, "c": {"type": "category"},
                            "b": {"type": "boolean"}, "d": {"type": "datetime"}, "t": {"type": "integer"}},
                "target": "t"}


@pytest.mark.parametrize("seed", range(8))
def test_a_row_keeps_its_fingerprint_in_a_grown_reordered_file_and_any_change_breaks_it(tmp_path, seed):
    """Property over random tables: every row of a file is found, by content, in a grown and shuffled
    copy read by the product's reader; a row with one changed cell is not (unless an equal row exists)."""
    from mlci.core.dataschema import load_schema
    from mlci.ml.tabular import read_table

    rng = np.random.default_rng(seed)
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(TABLE_SCHEMA))
    schema = load_schema(tmp_path / "schema.yaml")
    first = random_table(rng, int(rng.integers(20, 200)))
    grown = pd.concat([first, random_table(rng, int(rng.integers(0, 200))), first.iloc[:5]], ignore_index=True)
    grown = grown.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    first.to_csv(tmp_path / "first.csv", index=False)
    grown.to_csv(tmp_path / "grown.csv", index=False)
    columns = row_identity.identity_columns(["n", "f", "c", "b", "d"], "t")
    read_first = read_table(tmp_path / "first.csv", schema=schema)
    read_grown = read_table(tmp_path / "grown.csv", schema=schema)
    trained = row_identity.fingerprint_set(read_grown, columns)
    assert row_identity.seen_mask(row_identity.row_fingerprints(read_first, columns), trained).all()
    changed = read_first.copy()
    row = int(rng.integers(0, len(changed)))
    changed.loc[row, "n"] = 1000 + row            # outside every generated value
    fingerprints = row_identity.row_fingerprints(changed, columns)
    assert not row_identity.seen_mask(fingerprints[row:row + 1], trained).any()
    assert row_identity.seen_mask(np.delete(fingerprints, row), trained).all()


# -- fingerprints computed by whole columns equal the value-by-value definition ---------------------------

def _reference_fingerprints(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The scheme as first written (value by value): every stored training-row file was made this way."""
    import hashlib

    def texts(series):
        values = series.tolist()
        kind = getattr(series.dtype, "kind", "O") if isinstance(series.dtype, np.dtype) else "O"
        if kind in "iu":
            return list(map(str, values))
        if kind == "f":
            return list(map(row_identity._float_text, values))
        return list(map(row_identity._cell_text, values))

    out = np.empty(len(frame), dtype=np.uint64)
    for i, cells in enumerate(zip(*[texts(frame[column]) for column in columns])):
        digest = hashlib.blake2b("\x1f".join(cells).encode("utf-8", "surrogatepass"), digest_size=8)
        out[i] = int.from_bytes(digest.digest(), "little")
    return out


def _generated_frame(draw, st) -> pd.DataFrame:
    rows = draw(st.integers(0, 25))

    def listed(values):
        return draw(st.lists(values, min_size=rows, max_size=rows))
    floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
        [0.0, -0.0, 2.0 ** 63, -(2.0 ** 63), 2.0 ** 62, 1e300, 0.1, 3.0, -7.5])
    moments = st.integers(-9_000_000_000_000_000_000 // 1000, 9_000_000_000_000_000_000 // 1000)
    columns = {
        "i": np.array(listed(st.integers(-2 ** 63, 2 ** 63 - 1)), dtype=np.int64),
        "f": np.array(listed(floats), dtype=np.float64),
        "f32": np.array(listed(st.floats(width=32, allow_nan=True)), dtype=np.float32),
        "b": np.array(listed(st.booleans()), dtype=bool),
        "o": np.array(listed(st.none() | st.text(max_size=5) | st.integers(-5, 5) | floats), dtype=object),
        "ns": np.array([np.datetime64(v * 1000, "ns") if v % 7 else np.datetime64("NaT", "ns")
                        for v in listed(moments)], dtype="datetime64[ns]"),
        "us": np.array([np.datetime64(v // 1000, "us") for v in listed(moments)], dtype="datetime64[us]"),
        "tz": pd.to_datetime(np.array([v * 1000 for v in listed(moments)], dtype="datetime64[ns]")).tz_localize("UTC"),
        "s": pd.Series(listed(st.none() | st.text(max_size=3) | floats | st.booleans()), dtype=object),
        "ob": pd.Series(listed(st.none() | st.booleans()), dtype=object),
    }
    frame = pd.DataFrame(columns)
    # repeated rows, so columns are written once per distinct value as well as value by value
    picks = draw(st.lists(st.integers(0, max(rows - 1, 0)), max_size=3 * rows)) if rows else []
    return frame.take(list(range(rows)) + picks).reset_index(drop=True)


def test_whole_column_fingerprints_equal_the_value_by_value_definition():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.data())
    def check(data):
        frame = _generated_frame(data.draw, st)
        columns = data.draw(st.lists(st.sampled_from(list(frame.columns)), min_size=1, unique=True))
        assert row_identity.row_fingerprints(frame, columns).tolist() == \
            _reference_fingerprints(frame, columns).tolist()
    check()


def test_long_columns_of_distinct_and_repeated_values_have_the_value_by_value_fingerprints():
    """Past the sample that decides how a numeric column is written: mostly distinct columns value by
    value, repeating ones by their distinct values; both give the defined fingerprints."""
    rng = np.random.default_rng(7)
    rows = 3 * row_identity._SAMPLE
    frame = pd.DataFrame({
        "distinct": rng.normal(size=rows) * 1e4,
        "repeated": rng.choice([0.5, 1.0, -0.0, np.nan, 2.0 ** 63, 1e300], size=rows),
        "ints": rng.integers(-3, 3, size=rows),
        "wide_ints": rng.integers(-2 ** 62, 2 ** 62, size=rows),
        "moments": rng.integers(0, 4, size=rows).astype("datetime64[D]").astype("datetime64[ns]")
        + rng.choice([np.timedelta64(0, "ns"), np.timedelta64(1500, "ms")], size=rows),
        "text": pd.Series(rng.choice(np.array(["a", "b", None, np.nan, "é", "\ud800"], dtype=object), size=rows),
                          dtype=object),  # object dtype, as the product's reader gives category columns
    })
    columns = list(frame.columns)
    assert row_identity.row_fingerprints(frame, columns).tolist() == \
        _reference_fingerprints(frame, columns).tolist()
