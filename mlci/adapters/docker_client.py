"""The only module that imports the docker SDK. Every client error becomes an mlci error:
an engine or registry that is unreachable or refuses is a ``ServiceError`` (exit 3); a Dockerfile step
that fails is ``CheckFailed`` (exit 1, "the build fails").

Build and push answers are streams of JSON messages; an error arrives *inside* the stream with HTTP 200,
and the SDK's ``images.push`` does not raise on it, so both streams are read here message by message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import docker.errors
import requests.exceptions

import docker
from mlci.errors import CheckFailed, NotFound, ServiceError

LineSink = Callable[[str], None]
_USERINFO = re.compile(r"//[^/@\s]+@")


def _engine_address() -> str:
    return _USERINFO.sub("//", os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")


def _service_error(action: str, exc: Exception) -> ServiceError:
    text = " ".join(str(getattr(exc, "explanation", None) or exc).split())[:300]
    return ServiceError(f"Docker engine at {_engine_address()}: {action} failed: {text}",
                        hint="check that dockerd runs and DOCKER_HOST points to it")


def _mapped(action: str):
    """Decorator: docker/requests errors of ``action`` become ServiceError (NotFound for missing images)."""
    def wrap(function):
        def call(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except (ServiceError, CheckFailed, NotFound):
                raise
            except docker.errors.NotFound as exc:
                raise NotFound(f"{action}: {' '.join(str(exc.explanation or exc).split())[:300]}") from None
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
                raise _service_error(action, exc) from None
        call.__name__ = function.__name__
        call.__doc__ = function.__doc__
        return call
    return wrap


@dataclass
class ContainerInfo:
    id: str
    name: str
    status: str
    labels: dict[str, str]
    image: str


class DockerEngine:
    """A connection to one Docker engine (``DOCKER_HOST`` or the local socket)."""

    @_mapped("connecting")
    def __init__(self, timeout: float = 300) -> None:
        self.client = docker.from_env(timeout=int(timeout))
        self.api = self.client.api
        self.api.ping()

    # -- images -----------------------------------------------------------------------------------

    @_mapped("build")
    def build(self, context: str, *, tag: str, labels: dict[str, str] | None = None, no_cache: bool = False,
              on_line: LineSink | None = None) -> str:
        """Build ``context`` (its Dockerfile); returns the image id. Streams the build log to ``on_line``."""
        stream = self.api.build(path=context, tag=tag, labels=labels or {}, rm=True, forcerm=True,
                                nocache=no_cache, decode=True, pull=False)
        image_id = None
        for message in stream:
            if "error" in message or "errorDetail" in message:
                detail = message.get("errorDetail", {}).get("message") or message.get("error")
                raise CheckFailed(f"docker build failed: {' '.join(str(detail).split())[:500]}",
                                  hint="the build log above shows the failing step")
            text = message.get("stream")
            if text and on_line and text.strip():
                on_line(text.rstrip("\n"))
            image_id = (message.get("aux") or {}).get("ID") or image_id
        if not image_id:
            raise CheckFailed("docker build ended without producing an image")
        return image_id

    @_mapped("tag")
    def tag(self, image: str, repository: str, tag: str) -> None:
        self.api.tag(image, repository, tag)

    @_mapped("inspect image")
    def image(self, reference: str) -> dict[str, Any]:
        return self.api.inspect_image(reference)

    @_mapped("push")
    def push(self, repository: str, tag: str, *, auth: dict[str, str] | None = None,
             on_line: LineSink | None = None) -> str:
        """Push ``repository:tag``; returns the manifest digest. Fails on any error in the stream."""
        stream = self.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
        return _read_push_stream(stream, f"{repository}:{tag}", on_line)

    @_mapped("pull")
    def pull(self, reference: str, *, auth: dict[str, str] | None = None) -> str:
        """Pull ``repo@sha256:...`` (or ``repo:tag``); returns the local image id."""
        repository, _, digest = reference.partition("@")
        for message in self.api.pull(repository, tag=digest or None, stream=True, decode=True, auth_config=auth):
            if "error" in message or "errorDetail" in message:
                detail = message.get("errorDetail", {}).get("message") or message.get("error")
                raise ServiceError(f"pull of {reference} failed: {' '.join(str(detail).split())[:300]}",
                                   hint="check the registry and that the image was pushed (mlci push)")
        return self.image(reference)["Id"]

    # -- containers -------------------------------------------------------------------------------

    @_mapped("create container")
    def run(self, image: str, *, name: str, environment: dict[str, str], labels: dict[str, str],
            volumes: dict[str, dict[str, str]] | None = None, user: str | None = None) -> str:
        """Start a container on the host network; returns its id."""
        container = self.client.containers.run(
            image, name=name, detach=True, environment=environment, labels=labels, network_mode="host",
            volumes=volumes or {}, user=user, restart_policy={"Name": "unless-stopped"}, stop_signal="SIGTERM")
        return container.id

    @_mapped("list containers")
    def containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        return [ContainerInfo(id=c.id, name=c.name, status=c.status, labels=c.labels,
                              image=c.attrs.get("Config", {}).get("Image", ""))
                for c in self.client.containers.list(all=True, filters=filters)]

    @_mapped("inspect container")
    def container_state(self, container_id: str) -> dict[str, Any]:
        return self.api.inspect_container(container_id)["State"]

    @_mapped("read container logs")
    def logs(self, container_id: str, tail: int = 20) -> str:
        return self.api.logs(container_id, tail=tail).decode("utf-8", "replace")

    @_mapped("stop container")
    def retire(self, container_id: str, timeout: int = 30) -> None:
        """Stop (SIGTERM, then SIGKILL after ``timeout``) and remove a container."""
        try:
            self.api.stop(container_id, timeout=timeout)
        except docker.errors.NotFound:
            return
        self.api.remove_container(container_id, force=True)

    def close(self) -> None:
        self.client.close()


def _read_push_stream(stream: Iterable[dict[str, Any]], reference: str, on_line: LineSink | None) -> str:
    digest = None
    for message in stream:
        if "error" in message or "errorDetail" in message:
            detail = message.get("errorDetail", {}).get("message") or message.get("error")
            raise ServiceError(f"the registry refused the push of {reference}: {' '.join(str(detail).split())[:300]}",
                               hint="check the registry address, that it is running, and the credentials "
                                    "(MLCI_REGISTRY_USER/MLCI_REGISTRY_PASSWORD or docker login)")
        digest = (message.get("aux") or {}).get("Digest") or digest
        status = message.get("status")
        if status and on_line and "progress" not in message:
            on_line(f"{message.get('id', '')} {status}".strip())
    if not digest:
        raise ServiceError(f"the push of {reference} ended without a digest from the registry",
                           hint="the registry may have rejected the manifest; see its log")
    return digest
