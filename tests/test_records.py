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

from mlci.adapters.model_files import load_model
from mlci.adapters.registry_store import RECORD, ModelRegistry
from mlci.core import records
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
    assert version.train["sha256"] == "bff4dea816ec5a82093ce96556f3ff52ef36d001cb1f059f8320f4ba62940e95"
    assert version.train_row_identity["file"] == "train_rows.npz"
    assert version.git_commit is None  # written outside a git checkout: an empty git section
    assert version.artifact_sha256("model.skops") == record["artifacts"]["model.skops"]["sha256"]
    assert version.artifact_sha256("no-such-file") is None


def test_a_minimal_current_record_has_empty_typed_fields(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    registry.register({"task": "binary"}, {"model.skops": b"x"})
    version = registry.get_version(1)
    assert (version.features, version.schema, version.estimator_configured, version.train,
            version.train_row_identity, version.git_commit) == ((), None, None, {}, None, None)
    assert version.artifact_sha256("model.skops") == hashlib.sha256(b"x").hexdigest()


def test_a_deployment_written_in_part_does_not_stop_readers_of_other_fields(old_registry):
    old_registry.update(1, lambda r: r["deployments"].append({"id": "d9", "env": "qa", "version": 1}))
    version = old_registry.get_version(1)
    assert (version.version, version.features[0], version.image.name) == (1, "age", "registry.example/test-binary")
    with pytest.raises(KeyError):
        version.deployments  # noqa: B018 - the partial entry is refused by the reader that needs it
