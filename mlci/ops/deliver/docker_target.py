"""The docker target: the server in a container on a Docker engine (local, or remote via DOCKER_HOST)."""

from __future__ import annotations

import os
import uuid
from typing import Any
from urllib.parse import urlparse

from mlci.core.config import Project
from mlci.core.records import ModelVersion
from mlci.errors import UsageError
from mlci.ops.deliver.image import image_section, pushed_reference, registry_auth
from mlci.ops.deliver.settings import CONTAINER_EXPERIMENT_REGISTRY, CONTAINER_LOG_DIR, container_environment
from mlci.serve.settings import ServeSettings


class DockerTarget:
    """Containers on a Docker engine (local, or remote via DOCKER_HOST), on the host network."""

    name = "docker"

    def __init__(self, project: Project, env_name: str) -> None:
        from mlci.adapters.docker_client import DockerEngine

        self.project = project
        self.env_name = env_name
        self.engine = DockerEngine()

    @property
    def address(self) -> str:
        parsed = urlparse(os.environ.get("DOCKER_HOST", ""))
        return parsed.hostname if parsed.scheme in ("tcp", "ssh", "http", "https") and parsed.hostname else "127.0.0.1"

    def start(self, record: ModelVersion, settings: ServeSettings) -> dict[str, Any]:
        reference = pushed_reference(record)
        self.engine.pull(reference, auth=registry_auth())
        name = f"mlci-{self.project.config.project}-{self.env_name}-v{record.version}-{uuid.uuid4().hex[:6]}"
        volumes, user = self._log_volume(settings)
        environment = container_environment(settings)
        if settings.experiment_mode:
            volumes.update(self._challenger_volume(settings))
        container = self.engine.run(reference, name=name, environment=environment, user=user,
                                    labels={"org.mlci.project": self.project.config.project,
                                            "org.mlci.env": self.env_name,
                                            "org.mlci.version": str(record.version)},
                                    volumes=volumes)
        return {"container": container, "name": name, "image": reference}

    def _challenger_volume(self, settings: ServeSettings) -> dict[str, dict[str, str]]:
        """The image holds the champion only: the challenger's registry directory on this host (the local
        registry, or a verified copy of an MLflow version) is mounted read-only; its sha256 is verified on
        load as for any model."""
        if self.address != "127.0.0.1" or settings.experiment_registry is None:
            raise UsageError("a docker experiment mounts the challenger from this machine, which a remote "
                             "Docker host cannot read",
                             hint="run the experiment on a local Docker engine, or on the kubernetes target "
                             "(the challenger's own image supplies it)")
        return {str(settings.experiment_registry): {"bind": CONTAINER_EXPERIMENT_REGISTRY, "mode": "ro"}}

    def _log_volume(self, settings: ServeSettings) -> tuple[dict[str, dict[str, str]], str | None]:
        """Mount the project's prediction log directory so `mlci monitor` reads what the container logs.
        The container writes as the image's non-root user, or as the calling user when that is not root."""
        if settings.log_dir is None or self.address != "127.0.0.1":
            return {}, None
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            os.chown(settings.log_dir, image_section(self.project).user_id, -1)
            user = None
        else:
            user = f"{os.getuid()}:{os.getgid()}"
        return {str(settings.log_dir): {"bind": CONTAINER_LOG_DIR, "mode": "rw"}}, user

    def alive(self, handle: dict[str, Any]) -> bool:
        state = self.engine.container_state(handle["container"])
        return bool(state.get("Running")) and not state.get("Restarting")

    def diagnostics(self, handle: dict[str, Any]) -> str:
        return self.engine.logs(handle["container"], tail=10)

    def stop(self, handle: dict[str, Any]) -> None:
        self.engine.retire(handle["container"])
