"""Every bad input is a one-line located error with the documented exit code: 2 for a bad file or value,
1 for a registry that fails its integrity checks. Never 4, never a traceback, never a hang.

Property tests generate the hostile inputs (YAML documents, control characters in path values, URLs with
credentials and bad ports, wrong-shape registry records) so that a class is covered, not one example.
"""

from __future__ import annotations

import json
import string
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlci.core.config import load_project
from mlci.core.yamlsrc import MAX_ALIASED, MAX_DEPTH, load_yaml_text
from mlci.errors import ConfigError

MINIMAL = """\
project: demo
data:
  train: data/train.csv
model:
  task: binary
  estimator: sklearn.linear_model.LogisticRegression
"""

SCHEMA = """\
columns:
  x: {type: float}
  n: {type: integer}
  region: {type: category, values: [north, south]}
  y: {type: integer, values: [0, 1]}
target: y
"""

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_one_error(code: int, err: str, expected_code: int = 2) -> str:
    """Exit code as documented; stderr has exactly one error line (plus an optional hint), no traceback.

    Progress lines of a command that ran a while (``cross-validation: 0/3 folds``) may come before it.
    """
    assert code == expected_code, err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("mlci: error:")]
    assert len(errors) == 1, err
    assert all(line.startswith(("mlci: error:", "mlci: hint:")) for line in lines if line.startswith("mlci:")), err
    assert not any(line.startswith((" ", "\t", "File ")) for line in lines), err
    return errors[0]


def project(tmp_path: Path, extra: str = "", schema: str = SCHEMA) -> Path:
    (tmp_path / "mlci.yaml").write_text(MINIMAL + extra)
    (tmp_path / "schema.yaml").write_text(schema)
    return tmp_path


def check(run_cli, directory: Path, env: dict[str, str] | None = None, timeout: float = 10.0):
    started = time.perf_counter()
    code, out, err = run_cli("config", "check", cwd=directory, env=env)
    assert time.perf_counter() - started < timeout, "config check took too long"
    return code, out, err


# -- hostile YAML ----------------------------------------------------------------------------------------


def laughs(width: int, depth: int) -> str:
    """The billion-laughs shape: each level is a list of ``width`` aliases of the level before."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, depth + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


HOSTILE_YAML = {
    "billion-laughs": laughs(9, 9),
    "recursive-anchor": "loop: &a [1, *a]\n",
    "recursive-mapping": "loop: &m {k: *m}\n",
    "deep-flow-nesting": "deep: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep-block-nesting": "".join(" " * i + f"k{i}:\n" for i in range(1000)) + " " * 1000 + "v: 1\n",
    "complex-key-list": "? [a, b]\n: 1\n",
    "complex-key-mapping": "? {a: 1}\n: 1\n",
    "unknown-tag": "x: !custom value\n",
    "python-tag": "x: !!python/object/apply:os.system [echo hi]\n",
    "impossible-date": "x: 2024-13-45\n",
    "bad-float-tag": "x: !!float abc\n",
    "undefined-alias": "x: *nowhere\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_YAML))
def test_hostile_yaml_in_mlci_yaml_is_a_located_exit_2(run_cli, tmp_path, name):
    directory = project(tmp_path, HOSTILE_YAML[name])
    code, _, err = check(run_cli, directory)
    message = assert_one_error(code, err)
    assert "mlci.yaml:" in message, message


@pytest.mark.parametrize("name", sorted(HOSTILE_YAML))
def test_hostile_yaml_in_schema_yaml_is_a_located_exit_2(run_cli, tmp_path, name):
    directory = project(tmp_path, schema=SCHEMA + HOSTILE_YAML[name])
    code, _, err = check(run_cli, directory)
    message = assert_one_error(code, err)
    assert "schema.yaml:" in message, message


def test_alias_expansion_and_depth_are_bounded_not_banned():
    """Ordinary anchors still work; the limits sit far above what a real file needs."""
    doc = load_yaml_text("base: &b {a: 1, b: [1, 2]}\nother: *b\n" + "n: " + "[" * 20 + "]" * 20, "f.yaml")
    assert doc.data["other"] == {"a": 1, "b": [1, 2]}
    assert MAX_DEPTH >= 20 and MAX_ALIASED >= 10_000


@st.composite
def hostile_documents(draw) -> str:
    """YAML built from the constructs that hurt loaders: aliases, anchors, nesting, tags, odd keys."""
    parts = []
    for index in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["laughs", "recursive", "nest", "complex_key", "tag", "scalar", "text"]))
        if kind == "laughs":
            parts.append(laughs(draw(st.integers(2, 12)), draw(st.integers(1, 10))).replace("l", f"k{index}l"))
        elif kind == "recursive":
            parts.append(f"r{index}: &r{index} " + draw(st.sampled_from(
                [f"[*r{index}]", f"{{a: *r{index}}}", f"[1, [2, *r{index}]]"])) + "\n")
        elif kind == "nest":
            depth = draw(st.integers(1, 3000))
            opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
            parts.append(f"n{index}: " + opener * depth + "1" + closer * depth + "\n")
        elif kind == "complex_key":
            parts.append(draw(st.sampled_from(["? [a, b]\n: 1\n", "? {x: 1}\n: 2\n", "[a]: 1\n"])))
        elif kind == "tag":
            tag = draw(st.sampled_from(["!x", "!!int", "!!float", "!!bool", "!!timestamp", "!!binary",
                                        "!!python/name:os.system", "!!set", "!!omap"]))
            value = draw(st.text(string.ascii_letters + string.digits + "-:. ", max_size=12))
            parts.append(f"t{index}: {tag} '{value}'\n")
        elif kind == "scalar":
            parts.append(f"s{index}: " + draw(st.sampled_from(
                ["2024-02-30", "0x_", "1e9999", "-.inf", ".nan", "0b2", "12:30:99", "~", "'\\0'"])) + "\n")
        else:
            parts.append(draw(st.text(max_size=40)) + "\n")
    return "".join(parts)


@PROPERTY
@given(document=hostile_documents())
def test_any_hostile_document_loads_or_is_a_config_error_quickly(document):
    started = time.perf_counter()
    try:
        load_yaml_text(document, "f.yaml")
    except ConfigError as exc:
        assert all(issue.file == "f.yaml" for issue in exc.issues)
        assert "Traceback" not in str(exc)
    assert time.perf_counter() - started < 5.0


@PROPERTY
@given(value=st.text(min_size=1, max_size=30).filter(lambda v: v.strip()))
def test_any_mlci_environment_value_is_applied_or_a_config_error(tmp_path_factory, value):
    directory = project(tmp_path_factory.mktemp("env"))
    try:
        load_project(directory, environ={"MLCI_MODEL__SEED": value})
    except ConfigError as exc:
        assert any("MLCI_MODEL__SEED" in issue.format() for issue in exc.issues), exc


@pytest.mark.parametrize("value", ["[unclosed", "*undefined", "&a [*a]", "? [a]: 1", "!!int x", "{a: 1"])
def test_yaml_error_in_an_environment_value_names_the_variable(run_cli, tmp_path, value):
    code, _, err = check(run_cli, project(tmp_path), env={"MLCI_MODEL__SEED": value})
    assert "MLCI_MODEL__SEED" in assert_one_error(code, err)


# -- control characters in paths ------------------------------------------------------------------------

PATH_KEYS = {
    "data.train": "data:\n  train: {}\n",
    "data.holdout": "data:\n  train: t.csv\n  holdout: {}\n",
    "data.schema": "data:\n  train: t.csv\n  schema: {}\n",
    "reports": "reports: {}\n",
    "registry.path": "registry:\n  path: {}\n",
    "serve.log_dir": "serve:\n  log_dir: {}\n",
    "monitor.reference": "monitor:\n  reference: {}\n",
    "monitor.current": "monitor:\n  current: {}\n",
    "monitor.labels": "monitor:\n  labels: {}\n",
}
CONTROL = st.sampled_from([chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]])


@PROPERTY
@given(key=st.sampled_from(sorted(PATH_KEYS)), control=CONTROL,
       prefix=st.text(string.ascii_letters + "/._-", max_size=8), suffix=st.text(string.ascii_letters, max_size=8))
def test_a_control_character_in_any_path_value_is_a_located_exit_2(run_cli, tmp_path_factory, key, control,
                                                                     prefix, suffix):
    directory = tmp_path_factory.mktemp("path")
    body = MINIMAL.replace("data:\n  train: data/train.csv\n", "") if key.startswith("data.") else MINIMAL
    value = json.dumps(prefix + control + suffix)  # a JSON string is a valid double-quoted YAML scalar
    (directory / "mlci.yaml").write_text(body + PATH_KEYS[key].format(value))
    code, _, err = run_cli("config", "check", cwd=directory)
    message = assert_one_error(code, err)
    assert "mlci.yaml:" in message and key.replace(".", ".") in message and "control character" in message


def test_a_nul_byte_in_a_path_from_the_environment_is_exit_2(run_cli, tmp_path):
    code, _, err = check(run_cli, project(tmp_path), env={"MLCI_DATA__TRAIN": '"a\\0b.csv"'})
    message = assert_one_error(code, err)
    assert "MLCI_DATA__TRAIN" in message and "U+0000" in message


# -- URLs with credentials and bad ports ---------------------------------------------------------------

URL_KEYS = {
    "jenkins.url": "jenkins:\n  url: {}\n",
    "monitor.pushgateway": "monitor:\n  pushgateway: {}\n",
    "registry.tracking_uri": "registry:\n  tracking_uri: {}\n",
}
SECRET = st.text(string.ascii_letters + string.digits, min_size=8, max_size=16)
BAD_PORT = st.one_of(st.text(string.ascii_letters, min_size=1, max_size=5),
                     st.integers(65536, 10**8).map(str), st.just("-1"), st.just("8o8o"))


@PROPERTY
@given(key=st.sampled_from(sorted(URL_KEYS)), user=st.text(string.ascii_lowercase, min_size=1, max_size=6),
       secret=SECRET, port=BAD_PORT, query=st.booleans())
def test_a_url_with_a_bad_port_is_exit_2_and_never_shows_the_secret(run_cli, tmp_path_factory, key, user, secret,
                                                                    port, query):
    directory = project(tmp_path_factory.mktemp("url"))
    url = f"https://{user}:{secret}@host.example:{port}/path" + (f"?token={secret}" if query else "")
    with (directory / "mlci.yaml").open("a") as handle:
        handle.write(URL_KEYS[key].format(json.dumps(url)))
    code, out, err = run_cli("config", "check", cwd=directory)
    message = assert_one_error(code, err)
    assert key in message and "port" in message
    assert secret not in err + out


@pytest.mark.parametrize("field,value", [("registry", "user:s3cretpass@host:abc"), ("registry", "host:abc"),
                                         ("name", "user:s3cretpass@host.example:abc/team/model")])
def test_an_image_registry_with_a_bad_port_is_exit_2_without_the_secret(run_cli, tmp_path, field, value):
    extra = "image:\n  name: team/model\n" if field == "registry" else ""
    extra += f"  {field}: {json.dumps(value)}\n" if field == "registry" else f"image:\n  name: {json.dumps(value)}\n"
    code, out, err = check(run_cli, project(tmp_path, extra))
    assert f"image.{field}" in assert_one_error(code, err)
    assert "s3cretpass" not in err + out


def test_jenkins_url_from_the_environment_with_a_bad_port_is_exit_2_without_the_secret(run_cli, tmp_path):
    code, out, err = run_cli("jenkins", "status", cwd=project(tmp_path),
                             env={"JENKINS_URL": "https://bob:hunter2secret@jenkins.example:abc/"})
    assert_one_error(code, err)
    assert "hunter2secret" not in err + out


# -- the crash log -------------------------------------------------------------------------------------


def test_the_crash_log_never_holds_parameter_values_or_secrets(run_cli, tmp_path, monkeypatch):
    """An internal error whose message echoes its inputs: neither stderr nor the log may repeat them."""
    import mlci.ops.jenkins.server as ops

    secrets = ["hunter2secret", "rowvalue-42-private", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "urlpass99"]

    def buggy_trigger(*args, **kwargs):
        raise RuntimeError(f"bug while sending {args[2]} to https://alice:{secrets[3]}@jenkins.example/x?token=t "
                           f"with token={secrets[2]}")

    monkeypatch.setattr(ops, "connect", lambda project: None)
    monkeypatch.setattr(ops, "trigger_build", buggy_trigger)
    cache = tmp_path / "cache"
    code, out, err = run_cli("jenkins", "build", "job", "-p", f"API_KEY={secrets[0]}", "--param",
                             f"row={secrets[1]}", cwd=project(tmp_path),
                             env={"XDG_CACHE_HOME": str(cache), "JENKINS_URL": f"https://alice:{secrets[3]}@h/"})
    assert code == 4 and "internal error" in err
    log = (cache / "mlci" / "crash.log").read_text()
    assert "RuntimeError" in log and "API_KEY=***" in log and "row=***" in log
    for secret in secrets:
        assert secret not in log and secret not in err, secret


# -- estimator parameters -------------------------------------------------------------------------------

BAD_PARAMS = {  # (task, estimator, parameter) -> values its declared constraints refuse
    ("regression", "sklearn.linear_model.Ridge", "alpha"): st.floats(max_value=-1e-9, allow_nan=False,
                                                                      allow_infinity=False),
    ("regression", "sklearn.linear_model.Ridge", "solver"): st.text(string.ascii_letters, min_size=1, max_size=8)
    .filter(lambda s: s not in {"auto", "svd", "cholesky", "lsqr", "sparse_cg", "sag", "saga", "lbfgs"}),
    ("binary", "sklearn.linear_model.LogisticRegression", "C"): st.floats(max_value=0, allow_nan=False,
                                                                         allow_infinity=False),
    ("binary", "sklearn.ensemble.RandomForestClassifier", "n_estimators"): st.one_of(
        st.integers(max_value=0), st.text(string.ascii_letters, min_size=1, max_size=5)),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(sorted(BAD_PARAMS)), data=st.data())
def test_an_invalid_estimator_parameter_is_a_config_error_naming_it(tmp_path_factory, case, data):
    from mlci.ops.project.config_check import check_config

    task, estimator, name = case
    value = data.draw(BAD_PARAMS[case])
    directory = tmp_path_factory.mktemp("params")
    (directory / "mlci.yaml").write_text(MINIMAL.replace("task: binary", f"task: {task}")
                                         .replace("sklearn.linear_model.LogisticRegression", estimator)
                                         + f"  params:\n    {name}: {json.dumps(value)}\n")
    with pytest.raises(ConfigError) as caught:
        check_config(load_project(directory, environ={}))
    assert [issue.path for issue in caught.value.issues] == [f"model.params.{name}"]
    assert caught.value.issues[0].line == 8


def test_an_invalid_step_parameter_is_located(run_cli, tmp_path):
    extra = ("  steps:\n    - name: reduce\n      transformer: sklearn.decomposition.PCA\n"
             "      params: {n_components: -3}\n")
    code, _, err = check(run_cli, project(tmp_path, extra), timeout=60)
    assert "mlci.yaml:10: model.steps[0].params.n_components" in assert_one_error(code, err)


def test_train_with_alpha_minus_5_on_ridge_is_exit_2_before_reading_data(run_cli, tmp_path):
    from tests.model_projects import write_project

    directory = write_project(tmp_path / "p", task="regression", estimator="sklearn.linear_model.Ridge",
                              params={"alpha": -5})
    code, _, err = run_cli("train", cwd=directory)
    assert "model.params.alpha" in assert_one_error(code, err)
    assert not (directory / ".mlci" / "registry" / "versions").exists()


# -- rules that cannot pass or cannot be evaluated -------------------------------------------------------

IMPOSSIBLE = {
    "gate-min-above-max": ("gates:\n  rules:\n    - {metric: accuracy, min: 0.9, max: 0.8}\n", SCHEMA,
                           "gates.rules[0].min"),
    "schema-min-above-max": ("", SCHEMA.replace("x: {type: float}", "x: {type: float, min: 5, max: 1}"),
                             "columns.x.min"),
    "schema-rows-min-above-max": ("", SCHEMA + "rows: {min: 10, max: 5}\n", "rows.min"),
    "slice-not-in-schema": ("evaluation:\n  slices: [regoin]\n", SCHEMA, "evaluation.slices[0]"),
    "slice-on-target": ("evaluation:\n  slices: [y]\n", SCHEMA, "evaluation.slices[0]"),
    "slice-on-float": ("evaluation:\n  slices: [x]\n", SCHEMA, "evaluation.slices[0]"),
    "slice-with-many-values": ("evaluation:\n  slices: [n]\n",
                               SCHEMA.replace("n: {type: integer}",
                                              f"n: {{type: integer, values: {list(range(300))}}}"),
                               "evaluation.slices[0]"),
    "gate-slice-not-evaluated": ("gates:\n  rules:\n    - {metric: accuracy, min: 0.5, slice: {column: region, "
                                 "value: north}}\n", SCHEMA, "gates.rules[0].slice.column"),
    "gate-slice-unknown-value": ("evaluation:\n  slices: [region]\ngates:\n  rules:\n    - {metric: accuracy, "
                                 "min: 0.5, slice: {column: region, value: east}}\n", SCHEMA,
                                 "gates.rules[0].slice.value"),
    "gate-slice-on-float": ("evaluation:\n  slices: [x]\ngates:\n  rules:\n    - {metric: accuracy, "
                            "min: 0.5, slice: {column: x, value: 1.5}}\n", SCHEMA, "gates.rules[0].slice.column"),
}


@pytest.mark.parametrize("name", sorted(IMPOSSIBLE))
def test_config_check_refuses_rules_that_cannot_pass_or_be_evaluated(run_cli, tmp_path, name):
    extra, schema, key = IMPOSSIBLE[name]
    code, _, err = check(run_cli, project(tmp_path, extra, schema=schema), timeout=60)
    lines = [line for line in err.splitlines() if line.startswith("mlci: error:")]
    assert code == 2 and "Traceback" not in err, err
    assert any(key in line for line in lines), err


def test_the_slice_value_limit_is_documented():
    from mlci.core.consistency import MAX_SLICE_VALUES

    docs = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text()
    assert f"at most {MAX_SLICE_VALUES} values" in docs


def test_sliceable_columns_pass_config_check(run_cli, tmp_path):
    extra = ("evaluation:\n  slices: [region, n]\ngates:\n  rules:\n    - {metric: accuracy, min: 0.5, "
             "slice: {column: region, value: north}}\n")
    code, out, err = check(run_cli, project(tmp_path, extra), timeout=60)
    assert code == 0, err


# -- registry files of the wrong shape ------------------------------------------------------------------

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                     max_size=3), max_leaves=8)
RECORD_BREAKERS = {
    "version": st.one_of(JSON_VALUES.filter(lambda v: v != 1 or isinstance(v, bool)), st.just("1"), st.just(True)),
    "artifacts": JSON_VALUES.filter(lambda v: not isinstance(v, dict) or (v and not all(
        isinstance(e, dict) and isinstance(e.get("sha256"), str) and len(e["sha256"]) == 64 for e in v.values()))),
    "metrics": JSON_VALUES.filter(lambda v: v is not None and not isinstance(v, dict)),
    "features": JSON_VALUES.filter(lambda v: v is not None and not isinstance(v, list)),
    "deployments": JSON_VALUES.filter(lambda v: v is not None and not isinstance(v, list)),
}


def registry_with_one_version(root: Path):
    from mlci.adapters.registry_store import ModelRegistry

    registry = ModelRegistry(root)
    registry.register({"task": "binary", "metrics": {"accuracy": 0.9}, "features": ["a"], "deployments": []},
                      {"model.skops": b"model"})
    registry.set_alias("production", 1)
    return registry


@PROPERTY
@given(key=st.sampled_from(sorted(RECORD_BREAKERS)), data=st.data())
def test_a_record_of_the_wrong_shape_is_an_integrity_error_naming_the_file(tmp_path_factory, key, data):
    from mlci.errors import IntegrityError

    registry = registry_with_one_version(tmp_path_factory.mktemp("reg"))
    path = registry.root / "versions" / "v1" / "version.json"
    record = json.loads(path.read_text())
    record[key] = data.draw(RECORD_BREAKERS[key])
    path.write_text(json.dumps(record))
    for read in (lambda: registry.get(1), lambda: registry.get("production"), registry.versions):
        with pytest.raises(IntegrityError, match="version.json"):
            read()


@PROPERTY
@given(document=JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
def test_a_record_that_is_not_an_object_is_an_integrity_error(tmp_path_factory, document):
    from mlci.errors import IntegrityError

    registry = registry_with_one_version(tmp_path_factory.mktemp("reg"))
    (registry.root / "versions" / "v1" / "version.json").write_text(json.dumps(document))
    with pytest.raises(IntegrityError, match="version.json"):
        registry.get(1)


ALIAS_TARGETS = st.one_of(st.just("../../x"), st.text(max_size=10), st.floats(allow_nan=False), st.booleans(),
                          st.none(), st.integers(max_value=0), st.lists(st.integers(1, 3), max_size=2))


@PROPERTY
@given(target=ALIAS_TARGETS, where=st.sampled_from(["version", "history", "entry"]))
def test_an_alias_that_is_not_a_version_number_is_an_integrity_error(tmp_path_factory, target, where):
    from mlci.errors import IntegrityError

    registry = registry_with_one_version(tmp_path_factory.mktemp("reg"))
    path = registry.root / "aliases.json"
    aliases = json.loads(path.read_text())
    if where == "entry":
        aliases["production"] = target
    elif where == "history":
        aliases["production"]["history"] = [target] if not isinstance(target, list) else target + ["x"]
    else:
        aliases["production"]["version"] = target
    path.write_text(json.dumps(aliases))
    for read in (lambda: registry.resolve("production"), lambda: registry.alias_of("production"),
                 registry.aliases):
        with pytest.raises(IntegrityError, match="aliases.json"):
            read()


def test_an_alias_pointing_at_a_missing_version_is_an_integrity_error(tmp_path):
    from mlci.errors import IntegrityError

    registry = registry_with_one_version(tmp_path / "reg")
    path = registry.root / "aliases.json"
    path.write_text(json.dumps({"production": {"version": 7, "history": []}}))
    with pytest.raises(IntegrityError, match="aliases.json: alias 'production' points at version 7"):
        registry.resolve("production")


@pytest.mark.parametrize("file,content", [
    ("aliases.json", {"production": {"version": "../../x", "history": []}}),
    ("aliases.json", ["production"]),
    ("versions/v1/version.json", {"version": 1, "artifacts": "model.skops"}),
    ("versions/v1/version.json", [1, 2, 3]),
])
def test_registry_commands_exit_1_on_a_wrong_shape_file(run_cli, tmp_path, file, content):
    directory = project(tmp_path, "registry:\n  path: reg\n")
    registry_with_one_version(directory / "reg")
    (directory / "reg" / file).write_text(json.dumps(content))
    code, out, err = run_cli("registry", "show", "production", cwd=directory)
    assert Path(file).name in assert_one_error(code, err, expected_code=1)


# -- values Groovy cannot compile -----------------------------------------------------------------------

# One, two, three and four bytes in UTF-8; the last is six bytes in a class file (two surrogates).
WIDE_TEXT = st.text(st.sampled_from(["a", "é", "日", "\U0001F600", "'", "\\", "\n"]), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None)
@given(unit=WIDE_TEXT, extra=st.integers(-3, 3))
def test_a_literal_is_refused_exactly_when_its_class_file_constant_is_too_long(unit, extra):
    from mlci.core.groovy import MAX_LITERAL_BYTES, class_file_bytes, groovy_literal

    unit_bytes = class_file_bytes(unit)
    value = unit * (MAX_LITERAL_BYTES // unit_bytes) + "a" * max(0, MAX_LITERAL_BYTES % unit_bytes + extra)
    if class_file_bytes(value) <= MAX_LITERAL_BYTES:
        assert groovy_literal(value, key="jenkins.install").startswith("'")
    else:
        with pytest.raises(ConfigError, match="jenkins.install: value is .* at most 65,535"):
            groovy_literal(value, key="jenkins.install")


def test_the_literal_limit_is_the_one_groovy_compiles_to(groovy):
    """At the limit (with 4-byte characters counted as Java stores them) it compiles; one byte more does not."""
    from mlci.core.groovy import MAX_LITERAL_BYTES, class_file_bytes, groovy_literal

    emoji = "\U0001F600" * 100  # 600 bytes in a class file, 400 in UTF-8
    at_limit = emoji + "a" * (MAX_LITERAL_BYTES - class_file_bytes(emoji))
    source = "def value = {}\nprintln value.length()\n"
    fits = source.format(groovy_literal(at_limit))
    too_long = source.format("'" + at_limit + "a'")  # built by hand: groovy_literal refuses it
    # Fits in 65,535 bytes of UTF-8 but not of the class file's modified UTF-8: Groovy fails it too.
    utf8_fits = emoji + "a" * (MAX_LITERAL_BYTES - len(emoji.encode("utf-8")))
    with pytest.raises(ConfigError):
        groovy_literal(utf8_fits)
    surrogates = source.format("'" + utf8_fits + "'")
    results = groovy.parse_many([fits, too_long, surrogates])
    assert results[fits][0], results[fits][1]
    assert not results[too_long][0] and "UTF8 string too large" in results[too_long][1]
    assert not results[surrogates][0] and "UTF8 string too large" in results[surrogates][1]


def test_a_pipeline_value_too_long_for_groovy_is_exit_2_naming_the_key(run_cli, tmp_path):
    directory = project(tmp_path, "jenkins:\n  install: " + json.dumps("é" * 40_000) + "\n")
    code, _, err = run_cli("jenkinsfile", cwd=directory)
    assert "jenkins.install: value is 80,000 bytes" in assert_one_error(code, err)
    assert not (directory / "Jenkinsfile").exists()


def test_a_slice_column_with_too_many_values_in_the_data_is_exit_2_at_evaluate(run_cli, tmp_path):
    """An integer column without declared values passes config check; the holdout data decides."""
    from mlci.core.consistency import MAX_SLICE_VALUES
    from tests.model_projects import write_project

    root = write_project(tmp_path / "p")
    (root / "mlci.yaml").write_text((root / "mlci.yaml").read_text().replace("- region", "- credit_score"))
    assert run_cli("-C", root, "train")[0] == 0
    code, _, err = run_cli("-C", root, "evaluate")
    message = assert_one_error(code, err)
    assert "evaluation.slices[0]" in message and f"limited to {MAX_SLICE_VALUES}" in message


@pytest.mark.parametrize("estimator,params,steps,key", [
    ("sklearn.neighbors.KNeighborsClassifier", {"n_neighbors": 10_000}, [], "model.params.n_neighbors"),
    ("sklearn.linear_model.LogisticRegression", {}, [{"name": "reduce", "transformer": "sklearn.decomposition.PCA",
                                                     "params": {"n_components": 500}}],
     "model.steps[0].params.n_components"),
])
def test_parameters_refused_only_inside_fit_are_exit_2_at_train(run_cli, tmp_path, estimator, params, steps, key):
    """Valid alone, refused by the estimator against the data: located, nothing registered."""
    from tests.model_projects import write_project

    root = write_project(tmp_path / "p", estimator=estimator, params=params, extra={"model": {
        "task": "binary", "estimator": estimator, "params": params, "steps": steps}} if steps else None)
    code, _, err = run_cli("-C", root, "train")
    assert key in assert_one_error(code, err)
    assert not list((root / ".mlci" / "registry").glob("versions/v*/version.json"))


HOSTS = st.sampled_from(["host.example", "127.0.0.1", "[::1]", "jenkins"])


@PROPERTY
@given(user=st.text(string.ascii_lowercase, min_size=1, max_size=6), secret=SECRET, host=HOSTS, port=BAD_PORT,
       scheme=st.sampled_from(["http", "https"]))
def test_adapters_refuse_a_bad_port_without_showing_the_secret(user, secret, host, port, scheme):
    """--pushgateway, MLCI_PUSHGATEWAY and JENKINS_URL reach the adapters without passing mlci.yaml's checks."""
    from mlci.adapters.jenkins_client import JenkinsClient
    from mlci.adapters.pushgateway import Pushgateway
    from mlci.errors import UsageError

    url = f"{scheme}://{user}:{secret}@{host}:{port}/x?token={secret}"
    for connect in (Pushgateway, JenkinsClient):
        with pytest.raises(UsageError) as caught:
            connect(url)
        assert caught.value.exit_code == 2
        assert secret not in str(caught.value) and "port" in str(caught.value)


@PROPERTY
@given(secret=SECRET, argv_style=st.sampled_from(["-p", "--param", "--param="]),
       key=st.sampled_from(["API_KEY", "row", "x"]))
def test_redacted_argv_never_holds_a_parameter_value(secret, argv_style, key):
    from mlci.core.redact import redact_argv, scrub_text, secret_values

    argv = ["mlci", "jenkins", "build", "job"]
    argv += [f"--param={key}={secret}"] if argv_style.endswith("=") else [argv_style, f"{key}={secret}"]
    argv += ["https://u:" + secret[::-1] + "@h/"]
    shown = " ".join(redact_argv(argv))
    assert secret not in shown and secret[::-1] not in shown and f"{key}=***" in shown
    text = f"failed: {secret} and {secret[::-1]}"
    assert secret not in scrub_text(text, secret_values(argv, {}))
