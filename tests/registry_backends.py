"""The two registry backends as the shared contract tests see them: how a project is configured for each,
and how an attacker (or a broken disk) changes an artifact behind the registry's back."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from mlci.adapters.model_files import MODEL_FILE
from tests.model_projects import write_project

BACKENDS = ["local", "mlflow"]


class Backend:
    """A fresh registry (its own directory, or its own MLflow model name) for one test."""

    def __init__(self, name: str, base: Path, mlflow_url: str | None) -> None:
        self.name = name
        self.base = base
        self.mlflow_url = mlflow_url
        self.model_name = f"t-{uuid.uuid4().hex[:12]}"

    def section(self) -> dict[str, Any]:
        if self.name == "local":
            return {"backend": "local", "path": str(self.base / "shared-registry")}
        return {"backend": "mlflow", "tracking_uri": self.mlflow_url, "model_name": self.model_name}

    def project(self, root: Path, **kwargs: Any) -> Path:
        extra = kwargs.pop("extra", {}) or {}
        return write_project(root, rows=kwargs.pop("rows", 240), holdout_rows=kwargs.pop("holdout_rows", 120),
                             extra={**extra, "registry": self.section()}, **kwargs)

    def registry(self, root: Path):
        """The project's registry, checked to be this backend's (not a silent fallback to a directory)."""
        from mlci.core.config import load_project
        from mlci.ops.model.registry import open_registry

        registry = open_registry(load_project(root))
        expected = "local registry " if self.name == "local" else "MLflow "
        assert registry.describe().startswith(expected), registry.describe()
        return registry

    def tamper(self, version: int, name: str = MODEL_FILE) -> None:
        """Flip a byte of a stored artifact, in the store itself (not through mlci)."""
        if self.name == "local":
            path = self.base / "shared-registry" / "versions" / f"v{version}" / name
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
            return
        from mlflow import MlflowClient
        from mlflow.artifacts import download_artifacts

        client = MlflowClient(tracking_uri=self.mlflow_url)
        run_id = client.get_model_version(self.model_name, str(version)).run_id
        directory = "model" if name == MODEL_FILE else "mlci"
        local = Path(download_artifacts(run_id=run_id, artifact_path=f"{directory}/{name}",
                                        dst_path=str(self.base / "dl"), tracking_uri=self.mlflow_url))
        data = bytearray(local.read_bytes())
        data[len(data) // 2] ^= 0xFF
        local.write_bytes(bytes(data))
        client.log_artifact(run_id, str(local), artifact_path=directory)  # the artifact store accepts it


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path) -> Backend:
    url = request.getfixturevalue("mlflow_server") if request.param == "mlflow" else None
    return Backend(request.param, tmp_path, url)
