"""Typed registry records with a format version, read and written in one place (mlci/core/records.py).

tests/fixtures/registry-0.1.0 was written by release 0.1.0 (mlci train and evaluate, then an image
build/push entry and a docker deployment recorded through its registry API): its version.json has no
``format`` key. It must keep working, and the first write upgrades it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlci.adapters.model_files import load_model
from mlci.adapters.registry_store import RECORD, ModelRegistry
from mlci.core import records
from mlci.core.config import ExperimentGuardrails, ExperimentSection
from mlci.core.records import FORMAT, Deployment, ImageRef, ModelVersion
from mlci.errors import IntegrityError

FIXTURE = Path(__file__).parent / "fixtures" / "registry-0.1.0"


@pytest.fixture
def old_registry(tmp_path) -> ModelRegistry:
    root = tmp_path / "registry"
    shutil.copytree(FIXTURE, root)
    return ModelRegistry(root)


def stored(registry: ModelRegistry, version: int = 1) -> dict:
    return json.loads((registry.root / "versions" / f"v{version}" / RECORD).read_text())


def test_the_fixture_was_written_without_a_format(old_registry):
    assert "format" not in stored(old_registry)


def test_a_release_0_1_0_record_reads_as_a_typed_model_version(old_registry):
    version = ModelVersion.from_dict(old_registry.get("staging"))
    assert (version.version, version.task, version.estimator) == (1, "binary",
                                                                  "sklearn.linear_model._logistic.LogisticRegression")
    assert version.metrics["roc_auc"] == pytest.approx(0.7077, abs=1e-4)
    assert version.image == ImageRef(name="registry.example/test-binary", tags=("v1",), id="sha256:" + "1" * 64,
                                     digest="sha256:" + "2" * 64, size_bytes=123456789, built="2026-11-27T14:00:00Z",
                                     reference="registry.example/test-binary@sha256:" + "2" * 64,
                                     pushed="2026-11-27T14:01:00Z")
    deployment = version.active_deployment("staging")
    assert (deployment.target, deployment.status, deployment.handle["container"]) == ("docker", "active", "c" * 12)
    assert version.active_deployment("production") is None


def test_its_model_still_loads_verified(old_registry):
    model = load_model(old_registry.read_artifact(1, "model.skops"))
    assert hasattr(model, "predict_proba")


def test_the_typed_views_give_the_stored_form_back(old_registry):
    record = stored(old_registry)
    assert ImageRef.from_dict(record["image"]).to_dict() == record["image"]
    assert [Deployment.from_dict(d).to_dict() for d in record["deployments"]] == record["deployments"]
    assert ModelVersion.from_dict(record).to_dict() == {**record, "format": FORMAT}


def test_the_first_write_upgrades_an_old_record_and_keeps_every_field(old_registry):
    before = stored(old_registry)
    old_registry.update(1, lambda r: r.__setitem__("note", "x"))
    assert stored(old_registry) == {**before, "note": "x", "format": FORMAT}


def test_new_records_are_written_with_the_current_format(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    registry.register({"task": "binary"}, {"model.skops": b"x"})
    assert stored(registry)["format"] == FORMAT == 2


@pytest.mark.parametrize("value, message", [(FORMAT + 1, "written by a newer mlci"), ("2", "invalid format"),
                                            (0, "invalid format"), (True, "invalid format")])
def test_a_record_of_an_unknown_format_is_refused_not_misread(old_registry, value, message):
    path = old_registry.root / "versions" / "v1" / RECORD
    path.write_text(json.dumps({**stored(old_registry), "format": value}))
    with pytest.raises(IntegrityError, match=message):
        old_registry.get(1)


def test_upgrade_is_the_one_reader_of_the_format():
    assert records.upgrade({"version": 3}) == {"version": 3, "format": FORMAT}
    assert records.stamp({"version": 3}) == {"version": 3, "format": FORMAT}


def test_the_pushed_image_is_read_through_the_typed_record(old_registry):
    from mlci.errors import UsageError
    from mlci.ops.deliver.image import pushed_reference

    record = old_registry.get(1)
    assert pushed_reference(old_registry.get_version(1)) == "registry.example/test-binary@sha256:" + "2" * 64
    built_only = {**record, "image": {k: v for k, v in record["image"].items() if k not in ("reference", "pushed")}}
    for unpushed in (built_only, {k: v for k, v in record.items() if k != "image"}):
        with pytest.raises(UsageError, match=r"^model version 1 has no pushed image$") as refused:
            pushed_reference(ModelVersion.from_dict(unpushed), hint="h")
        assert refused.value.hint == "h"


def test_the_fields_readers_need_are_typed_for_a_release_0_1_0_record(old_registry):
    version = old_registry.get_version("staging")
    record = stored(old_registry)
    assert version.features == tuple(record["features"]) and version.features[0] == "age"
    assert version.schema["columns"]["customer_id"] == {"type": "string", "nullable": False, "feature": False}
    assert version.estimator_configured == "sklearn.linear_model.LogisticRegression"
    assert version.train.sha256 == "bff4dea816ec5a82093ce96556f3ff52ef36d001cb1f059f8320f4ba62940e95"
    assert version.train_row_identity["file"] == "train_rows.npz"
    assert version.git_commit is None  # written outside a git checkout: an empty git section
    assert version.artifact_sha256("model.skops") == record["artifacts"]["model.skops"]["sha256"]
    assert version.artifact_sha256("no-such-file") is None


def test_a_minimal_current_record_has_empty_typed_fields(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    registry.register({"task": "binary"}, {"model.skops": b"x"})
    version = registry.get_version(1)
    assert (version.features, version.schema, version.estimator_configured, version.train,
            version.train_row_identity, version.git_commit) == ((), None, None, records.DataFile(None, None, None),
                                                                None, None)
    assert version.artifact_sha256("model.skops") == hashlib.sha256(b"x").hexdigest()


def test_a_deployment_written_in_part_does_not_stop_readers_of_other_fields(old_registry):
    old_registry.update(1, lambda r: r["deployments"].append({"id": "d9", "env": "qa", "version": 1}))
    version = old_registry.get_version(1)
    assert (version.version, version.features[0], version.image.name) == (1, "age", "registry.example/test-binary")
    with pytest.raises(IntegrityError, match=r"^a recorded deployment entry d9 is incomplete \(no 'target'\)$"):
        version.deployments  # noqa: B018 - the partial entry is refused by the reader that needs it


# -- the deployment and experiment history, typed -----------------------------------------------------------
#
# tests/fixtures/registry-format2 holds the records (version.json) and aliases a local registry had after the
# code of this release ran on the bundled example: train and evaluate twice, deploy v1 then v2 to a local
# environment, a shadow experiment of v1, a deploy of v1 (which superseded it), then a shadow experiment of v2.
# tests/fixtures/rendered holds what `registry show` and the model card said for both fixtures before
# they read typed records: the typed readers must say exactly the same.

FORMAT2 = Path(__file__).parent / "fixtures" / "registry-format2"
RENDERED = Path(__file__).parent / "fixtures" / "rendered"


@pytest.fixture
def format2_registry(tmp_path) -> ModelRegistry:
    root = tmp_path / "registry2"
    shutil.copytree(FORMAT2, root)
    return ModelRegistry(root)


def _entries(fixture: Path, key: str) -> list[dict]:
    return [entry for path in sorted(fixture.glob("versions/v*/version.json"))
            for entry in json.loads(path.read_text()).get(key) or []]


@pytest.mark.parametrize("entry", _entries(FIXTURE, "deployments") + _entries(FORMAT2, "deployments"),
                         ids=lambda e: f"{e['env']}-v{e['version']}-{e['status']}")
def test_every_stored_deployment_reads_typed_and_gives_its_stored_form_back(entry):
    deployment = Deployment.from_dict(entry)
    assert (deployment.id, deployment.env, deployment.version, deployment.status) == (
        entry["id"], entry["env"], entry["version"], entry["status"])
    assert deployment.to_dict() == entry


def _data_files(fixture: Path) -> list[tuple[str, dict]]:
    return [(f"{path.parent.name}-{name}", data) for path in sorted(fixture.glob("versions/v*/version.json"))
            for name, data in json.loads(path.read_text())["data"].items()]


@pytest.mark.parametrize("name, data", _data_files(FIXTURE) + _data_files(FORMAT2), ids=lambda v: str(v)[:16])
def test_every_stored_data_file_reads_typed_and_gives_its_stored_form_back(name, data):
    data_file = records.DataFile.from_dict(data)
    assert data_file.to_dict() == data and list(data_file.to_dict()) == list(data)  # same keys, same order
    assert (data_file.row_identity is not None) == name.endswith("-train")


@pytest.mark.parametrize("entry", _entries(FORMAT2, "experiments"), ids=lambda e: e["status"])
def test_every_stored_experiment_reads_typed_and_gives_its_stored_form_back(entry):
    experiment = records.Experiment.from_dict(entry)
    assert (experiment.id, experiment.mode, experiment.champion, experiment.challenger) == (
        entry["id"], entry["mode"], entry["champion"], entry["challenger"])
    assert experiment.to_dict() == entry


def test_the_format2_fixture_holds_the_history_it_claims():
    assert [(e["version"], e["status"]) for e in _entries(FORMAT2, "deployments")] == [
        (1, "retired"), (1, "retired"), (1, "active"), (2, "retired"), (2, "retired")]
    assert [(e["challenger"], e["status"]) for e in _entries(FORMAT2, "experiments")] == [
        (1, "superseded"), (2, "running")]


def test_the_deployment_history_of_both_releases_is_typed(old_registry, format2_registry):
    from mlci.ops.deliver.history import active_deployment, deployments

    (old,) = deployments(old_registry, "staging")
    assert isinstance(old, Deployment) and old == old_registry.get_version(1).active_deployment("staging")
    history = deployments(format2_registry, "laptop")
    assert all(isinstance(d, Deployment) for d in history)
    assert [d.time for d in history] == sorted(d.time for d in history)
    current = active_deployment(format2_registry, "laptop")
    assert (current.version, current.target, current.url) == (1, "local", history[-1].url)
    assert current.extra == {"experiment": _entries(FORMAT2, "experiments")[-1]["id"]}


def test_a_status_change_rewrites_only_its_entry_and_keeps_every_field(format2_registry):
    from mlci.ops.deliver.history import active_deployment, set_status

    before = stored(format2_registry, 1)
    current = active_deployment(format2_registry, "laptop")
    set_status(format2_registry, current, "retired")
    after = stored(format2_registry, 1)
    changed = [i for i, d in enumerate(before["deployments"]) if d["id"] == current.id]
    assert len(changed) == 1
    expected = list(before["deployments"])
    ended = after["deployments"][changed[0]]["ended"]
    expected[changed[0]] = {**expected[changed[0]], "status": "retired", "ended": ended}
    assert after == {**before, "deployments": expected}
    assert active_deployment(format2_registry, "laptop") is None


def test_the_experiment_state_of_a_format2_registry_is_typed(format2_registry):
    from mlci.ops.deliver.experiment_state import experiment_settings, experiments_of, running_experiment

    superseded, running = experiments_of(format2_registry, "laptop")
    assert isinstance(running, records.Experiment) and running == running_experiment(format2_registry, "laptop")
    assert (running.mode, running.champion, running.challenger, running.status) == ("shadow", 1, 2, "running")
    assert (superseded.outcome, running.outcome) == ("superseded", "running")
    assert experiment_settings(running) == {
        "experiment_mode": "shadow", "experiment_challenger": "2", "experiment_share": 0.0, "experiment_key": "",
        "experiment_id": running.id, "experiment_queue_rows": running.plan.queue_rows}


def test_a_stored_plan_reads_as_the_config_section_it_was_made_from():
    (_, entry) = _entries(FORMAT2, "experiments")
    plan = records.Experiment.from_dict(entry).plan
    assert isinstance(plan, ExperimentSection) and isinstance(plan.guardrails, ExperimentGuardrails)
    assert (plan.metric, plan.alpha, plan.min_rows, plan.guardrails.max_latency_ratio) == (
        entry["plan"]["metric"], entry["plan"]["alpha"], entry["plan"]["min_rows"],
        entry["plan"]["guardrails"]["max_latency_ratio"])


def test_an_older_plan_takes_the_config_defaults_and_a_newer_one_keeps_its_keys():
    from mlci.ops.deliver.experiment_state import experiment_settings

    (_, entry) = _entries(FORMAT2, "experiments")
    older = {k: v for k, v in entry["plan"].items() if k not in ("queue_rows", "min_rows")}
    older["guardrails"] = {"max_error_rate": 0.02}
    experiment = records.Experiment.from_dict({**entry, "plan": older})
    assert experiment_settings(experiment)["experiment_queue_rows"] == 10_000  # the config's default
    assert (experiment.plan.min_rows, experiment.plan.guardrails) == (100, ExperimentGuardrails(max_error_rate=0.02))
    newer = {**entry, "plan": {**entry["plan"], "sequential_test": "msprt"}}
    assert records.Experiment.from_dict(newer).to_dict() == newer


def test_an_experiment_change_goes_through_its_typed_entry(format2_registry):
    from mlci.ops.deliver.experiment_state import change_experiment, running_experiment

    before = stored(format2_registry, 2)
    running = running_experiment(format2_registry, "laptop")
    look = {"time": "2026-12-01T03:00:00Z", "rows": 0, "decision": "continue"}
    changed = change_experiment(format2_registry, running, looks=(*running.looks, look))
    assert changed == running_experiment(format2_registry, "laptop") and changed.looks == (look,)
    (entry,) = before["experiments"]
    assert stored(format2_registry, 2) == {**before, "experiments": [{**entry, "looks": [look]}]}


@pytest.mark.parametrize("history, entry", [
    ("deployments", Deployment(id="d2", env="qa", version=1, target="local", time="t", status="active")),
    ("experiments", records.Experiment(id="e2", env="qa", mode="canary", champion=1, challenger=1, share=0.1,
                                       key=None, plan=ExperimentSection(), started="t", status="running")),
])
def test_an_entry_is_written_in_its_history_through_its_typed_class(history, entry):
    record = {"version": 1, history: [{"id": "d1", "env": "half-written"}]}
    records.append_entry(record, entry)
    assert record[history] == [{"id": "d1", "env": "half-written"}, entry.to_dict()]
    records.change_entry(record, entry, status="failed")
    assert record[history][0] == {"id": "d1", "env": "half-written"}  # another entry is left as it is
    assert type(entry).from_dict(record[history][1]).status == "failed"


_optional = st.one_of(st.none(), st.text(min_size=1, max_size=8))


@given(url=_optional, ended=_optional, image=_optional, experiment=_optional, seq=st.integers(0, 9),
       status=st.sampled_from(["active", "retired", "rolled_back", "failed"]),
       handle=st.dictionaries(st.sampled_from(["pid", "log", "container", "name"]), st.text(max_size=5)))
def test_any_deployment_as_the_writers_store_it_round_trips(url, ended, image, experiment, seq, status, handle):
    entry = {"id": "d", "env": "e", "version": 3, "target": "local", "image": image, "time": "t", "kind": "deploy",
             "handle": handle, "status": status, "experiment": experiment, "seq": seq}
    entry.update({k: v for k, v in (("url", url), ("ended", ended)) if v is not None})
    assert Deployment.from_dict(entry).to_dict() == entry


def test_an_incomplete_experiment_entry_is_an_integrity_error():
    with pytest.raises(IntegrityError, match=r"^a recorded experiment entry e1 is incomplete \(no 'champion'\)$"):
        records.Experiment.from_dict({"id": "e1", "env": "qa", "mode": "shadow"})


# -- registry show and the model card read the typed record ----------------------------------------------------


def _project_with(tmp_path: Path, registry: Path) -> Path:
    from tests.serving_support import copy_example

    project = copy_example(tmp_path)
    text = (project / "mlci.yaml").read_text().replace("path: .mlci/registry", f"path: {registry}")
    (project / "mlci.yaml").write_text(text)
    return project


@pytest.mark.parametrize("fixture, label, versions", [(FIXTURE, "release-0.1.0", [1]),
                                                      (FORMAT2, "format2", [1, 2])])
def test_registry_show_and_the_model_card_say_what_they_said_before_they_were_typed(
        tmp_path, run_cli, fixture, label, versions):
    from mlci.ops.model.registry import MODEL_CARD_FILE, write_model_card

    registry = ModelRegistry(tmp_path / "registry")
    shutil.copytree(fixture, registry.root)
    project = _project_with(tmp_path, registry.root)
    for version in versions:
        code, out, err = run_cli("-C", project, "registry", "show", f"v{version}")
        assert code == 0, err
        assert out == (RENDERED / f"{label}-v{version}-show.txt").read_text()
        write_model_card(registry, version)
        card = registry.root / "versions" / f"v{version}" / MODEL_CARD_FILE
        assert card.read_text() == (RENDERED / f"{label}-v{version}-card.md").read_text()
