"""The model registry: concurrent registration, a writer killed mid-write, tampered and untrusted model
files, path escapes, and the registry commands through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlci.adapters.model_files import dump_model
from mlci.adapters.registry_store import ModelRegistry
from mlci.errors import IntegrityError, NotFound
from tests.model_projects import write_project

REPO = Path(__file__).resolve().parent.parent

WRITER = textwrap.dedent("""
    import os, sys
    from mlci.adapters.registry_store import ModelRegistry
    root, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    registry = ModelRegistry(root, lock_timeout=120)
    for i in range(count):
        payload = os.urandom(size)
        registry.register({"writer": os.getpid(), "n": i}, {"model.skops": payload, "notes.txt": b"x" * 100})
""")


def run_writers(root: Path, processes: int, count: int, size: int) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return [subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(count), str(size)], env=env)
            for _ in range(processes)]


def assert_consistent(registry: ModelRegistry) -> list[dict]:
    versions = registry.versions()
    for record in versions:
        for name in record["artifacts"]:
            registry.read_artifact(record["version"], name)  # verifies the sha256
    return versions


def test_eight_concurrent_processes_lose_nothing(tmp_path):
    writers = run_writers(tmp_path / "reg", processes=8, count=5, size=20_000)
    assert [w.wait(timeout=180) for w in writers] == [0] * 8
    versions = assert_consistent(ModelRegistry(tmp_path / "reg"))
    assert [v["version"] for v in versions] == list(range(1, 41))
    per_writer = {}
    for v in versions:
        per_writer.setdefault(v["writer"], []).append(v["n"])
    assert len(per_writer) == 8 and all(sorted(ns) == list(range(5)) for ns in per_writer.values())


def test_a_writer_killed_mid_write_leaves_the_registry_readable(tmp_path):
    root = tmp_path / "reg"
    for attempt in range(3):
        [writer] = run_writers(root, processes=1, count=1000, size=3_000_000)
        time.sleep(1.0 + 0.4 * attempt)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    registry = ModelRegistry(root, lock_timeout=5)
    before = assert_consistent(registry)
    # the dead writer's lock (if it held one) is recovered, and the next registration gets a fresh number
    record = registry.register({"after": True}, {"model.skops": b"ok"})
    assert record["version"] > max([v["version"] for v in before], default=0)
    assert assert_consistent(registry)[-1]["after"] is True


def test_artifact_names_and_symlinks_cannot_leave_the_registry(tmp_path):
    registry = ModelRegistry(tmp_path / "reg")
    record = registry.register({}, {"model.skops": b"model"})
    for name in ("../../outside", "/etc/passwd", "..", "a/b"):
        with pytest.raises(IntegrityError):
            registry.artifact_path(record["version"], name)
    # a record edited to point outside is refused before anything is read
    path = tmp_path / "reg/versions/v1/version.json"
    data = json.loads(path.read_text())
    data["artifacts"]["../../../secret"] = {"sha256": "0" * 64}
    path.write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="not a plain file name"):
        registry.read_artifact(1, "../../../secret")
    outside = tmp_path / "outside.skops"
    outside.write_bytes(b"model")
    model = tmp_path / "reg/versions/v1/model.skops"
    model.unlink()
    model.symlink_to(outside)
    with pytest.raises(IntegrityError, match="outside the registry"):
        registry.read_artifact(1, "model.skops")


@pytest.fixture
def trained(tmp_path, run_cli):
    root = write_project(tmp_path / "proj")
    code, _, err = run_cli("-C", root, "train")
    assert code == 0, err
    return root


def test_a_tampered_model_file_is_refused(trained, run_cli):
    model = trained / ".mlci/registry/versions/v1/model.skops"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    code, out, err = run_cli("-C", trained, "evaluate")
    assert code == 1
    assert "sha256 does not match" in err and "Traceback" not in err
    assert not (trained / "reports/evaluate.json").exists()
    code, _, err = run_cli("-C", trained, "registry", "promote", "1", "--to", "production")
    assert code == 1 and "sha256 does not match" in err
    assert not (trained / ".mlci/registry/aliases.json").exists()


def test_a_model_with_an_untrusted_type_is_refused_even_with_a_matching_hash(trained, run_cli):
    import operator

    from sklearn.preprocessing import FunctionTransformer

    registry = ModelRegistry(trained / ".mlci/registry")
    hostile = dump_model(FunctionTransformer(func=operator.attrgetter("__class__")))
    # sha256 recorded: only the type list protects
    registry.update(1, lambda r: None, artifacts={"model.skops": hostile})
    code, _, err = run_cli("-C", trained, "evaluate")
    assert code == 1
    assert "outside the trusted list" in err and "operator" in err


def test_unknown_version_is_exit_2_and_registry_unchanged(trained, run_cli):
    before = sorted(p.name for p in (trained / ".mlci/registry/versions").iterdir())
    for args in (("registry", "show", "7"), ("evaluate", "--model", "v9"), ("registry", "promote", "3", "--to", "x"),
                 ("registry", "rollback", "production"), ("gate", "--model", "nope")):
        code, _, err = run_cli("-C", trained, *args)
        assert code == 2, (args, err)
        assert err.startswith("mlci: error: ") and "Traceback" not in err
    assert sorted(p.name for p in (trained / ".mlci/registry/versions").iterdir()) == before


def test_promote_rollback_list_show_diff(trained, run_cli):
    config = (trained / "mlci.yaml").read_text().replace("max_iter: 500", "max_iter: 400\n    C: 0.5")
    (trained / "mlci.yaml").write_text(config)
    assert run_cli("-C", trained, "train")[0] == 0
    assert run_cli("-C", trained, "evaluate", "--model", "2")[0] == 0
    assert run_cli("-C", trained, "registry", "promote", "1", "--to", "production")[0] == 0
    code, out, _ = run_cli("-C", trained, "registry", "promote", "latest", "--to", "production")
    assert code == 0 and "production -> v2 (was v1)" in out
    code, out, _ = run_cli("-C", trained, "--json", "registry", "list")
    listing = json.loads(out)
    assert [v["aliases"] for v in listing["versions"]] == [[], ["production"]]
    assert listing["aliases"]["production"]["history"] == [1]
    code, out, _ = run_cli("-C", trained, "registry", "rollback", "production")
    assert code == 0 and "production -> v1 (was v2)" in out
    code, out, _ = run_cli("-C", trained, "--json", "registry", "show", "production")
    shown = json.loads(out)
    assert shown["record"]["version"] == 1 and shown["aliases"] == ["production"]
    assert shown["record"]["data"]["train"]["sha256"] and shown["record"]["libraries"]["scikit-learn"]
    code, out, _ = run_cli("-C", trained, "--json", "registry", "diff", "1", "2")
    changes = json.loads(out)["changes"]
    assert {"key": "C", "left": 1.0, "right": 0.5} in changes["estimator"]
    assert any(c["key"] == "roc_auc" and c["left"] is None for c in changes["metrics"])
    card = (trained / ".mlci/registry/versions/v2/model_card.md").read_text()
    assert "# Model card: test-binary v2" in card and "| roc_auc |" in card
    with pytest.raises(NotFound):
        ModelRegistry(trained / ".mlci/registry").resolve("staging")
