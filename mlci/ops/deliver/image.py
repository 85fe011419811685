"""``mlci build`` and ``mlci push``: the serving image of a model version.

The build context (``<project>/.mlci/build/``) holds the rendered Dockerfile, a ``.dockerignore``, the
runtime requirements pinned to the versions installed here (so the image unpickles exactly what training
wrote), a wheelhouse fetched on this host with pip (containers may not reach a package index: proxies,
air-gapped agents), the ``mlci`` package source, and a one-version registry with the verified model.
The wheelhouse is cached under ``$MLCI_CACHE_DIR`` (or ``~/.cache/mlci``) by the hash of the requirements,
and files that did not change keep their bytes, so the engine's layer cache is reused: a new model
version rebuilds only the last layer.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import mlci
from mlci.adapters.commands import PIP_DOWNLOAD_TIMEOUT, run_command
from mlci.core.atomic import atomic_write_text
from mlci.core.config import ImageSection, Project
from mlci.core.records import ModelVersion
from mlci.core.reports import Check, Report, write_report
from mlci.errors import ConfigError, ServiceError, UsageError
from mlci.ops.model.registry import MODEL_FILE, local_copy, open_registry
from mlci.ops.reporting.render import render, template_text

# What the server imports (and nothing else: no pandas, no matplotlib; scipy comes with scikit-learn), and
# its optional speed-ups for uvicorn (used when installed here).
RUNTIME_PACKAGES = ("starlette", "uvicorn", "prometheus_client", "orjson", "numpy", "scipy", "scikit-learn", "skops",
                    "PyYAML")
OPTIONAL_PACKAGES = ("httptools", "uvloop")
SERVER_PORT = 8080
LineSink = Callable[[str], None]


def image_section(project: Project) -> ImageSection:
    image = project.config.image
    if image is None:
        raise ConfigError(f"{project.config_path.name}: no `image` section",
                          hint="add `image: {name: registry.example.com/team/model}` to mlci.yaml")
    return image


def repository(image: ImageSection) -> str:
    """The image repository including its registry host (``image.registry`` prefixes a bare name)."""
    if image.registry and not image.name.startswith(image.registry.rstrip("/") + "/"):
        return f"{image.registry.rstrip('/')}/{image.name}"
    return image.name


def cache_dir() -> Path:
    return Path(os.environ.get("MLCI_CACHE_DIR") or Path.home() / ".cache" / "mlci")


def requirements_text() -> str:
    lines = []
    for name in RUNTIME_PACKAGES + OPTIONAL_PACKAGES:
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            if name in RUNTIME_PACKAGES:
                raise UsageError(f"the server needs {name}, which is not installed here",
                                 hint="pip install -e '.[dev]' (or pip install mlci)") from None
    return "\n".join(lines) + "\n"


def wheelhouse(requirements: str, python: str, on_line: LineSink) -> Path:
    """A directory of wheels for ``requirements`` and Python ``python``, downloaded once per hash."""
    key = hashlib.sha256(f"{requirements}|{python}|{sys.platform}".encode()).hexdigest()[:16]
    target = cache_dir() / "wheelhouse" / key
    if (target / ".complete").exists():
        on_line(f"wheelhouse: cached ({target})")
        return target
    partial = target.with_name(f"{key}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "requirements.txt").write_text(requirements)
    on_line(f"wheelhouse: pip download for Python {python} into {target}")
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", python,
               "--dest", str(partial), "--disable-pip-version-check", "-q", "-r", str(partial / "requirements.txt")]
    try:
        run_command(command, what="pip download of the server's packages", timeout=PIP_DOWNLOAD_TIMEOUT, check=True,
                    hint="the host needs a package index or a --find-links mirror (pip config)")
    except ServiceError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    (partial / ".complete").write_text(requirements)
    if target.exists():  # another build finished first
        shutil.rmtree(partial, ignore_errors=True)
    else:
        os.replace(partial, target)
    return target


def _sync_tree(source: Path, target: Path, *, pattern: str = "*") -> None:
    """Make ``target`` hold exactly ``source``'s files (matching ``pattern``), rewriting only changed ones,
    so unchanged files keep their bytes and metadata and the engine's cache sees the same context."""
    wanted = {p.relative_to(source) for p in source.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts}
    if target.exists():
        for path in sorted(target.rglob("*"), reverse=True):
            relative = path.relative_to(target)
            if path.is_file() and relative not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    for relative in sorted(wanted):
        src, dst = source / relative, target / relative
        data = src.read_bytes()
        if dst.exists() and dst.read_bytes() == data:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
        os.chmod(dst, 0o644)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
        os.chmod(path, 0o644)


def prepare_context(project: Project, record: ModelVersion, *, on_line: LineSink) -> Path:
    image = image_section(project)
    context = project.path(".mlci/build")
    context.mkdir(parents=True, exist_ok=True)
    requirements = requirements_text()
    _sync_tree(wheelhouse(requirements, image.python, on_line), context / "wheels", pattern="*.whl")
    _write_if_changed(context / "requirements.txt", requirements)
    _sync_tree(Path(mlci.__file__).parent, context / "mlci", pattern="*.py")
    version = record.version
    shutil.rmtree(context / "registry", ignore_errors=True)
    local_copy(open_registry(project), version, context / "registry")  # verified read, any backend
    _write_if_changed(context / ".dockerignore", template_text("docker/dockerignore"))
    _write_if_changed(context / "Dockerfile", render(
        "docker/Dockerfile.j2", project=project.config.project, version=version, base=image.base,
        user_id=image.user_id, port=SERVER_PORT, git_commit=record.git_commit or "",
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        model_sha256=record.artifacts[MODEL_FILE]["sha256"], data_sha256=record.train.sha256 or ""))
    return context


def image_tags(record: ModelVersion) -> list[str]:
    tags = [f"v{record.version}"]
    commit = record.git_commit
    if commit:
        tags.append(f"git-{commit[:12]}")
    return tags


def build_image(project: Project, *, ref: str = "latest", no_cache: bool = False,
                on_line: LineSink = lambda line: None) -> Report:
    from mlci.adapters.docker_client import DockerEngine

    image = image_section(project)
    registry = open_registry(project)
    record = registry.get_version(ref)
    started = time.monotonic()
    context = prepare_context(project, record, on_line=on_line)
    prepared = time.monotonic()
    engine = DockerEngine()
    repo = repository(image)
    tags = image_tags(record)
    steps: list[str] = []

    def log_step(line: str) -> None:
        steps.append(line)
        on_line(line)

    image_id = engine.build(str(context), tag=f"{repo}:{tags[0]}", no_cache=no_cache, on_line=log_step)
    for tag in tags[1:]:
        engine.tag(image_id, repo, tag)
    built = time.monotonic()
    size = engine.image(image_id).get("Size", 0)
    base_size = engine.image(image.base).get("Size", 0)
    entry = {"name": repo, "tags": tags, "id": image_id, "digest": None, "size_bytes": size,
             "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    registry.update(record.version, lambda r: r.__setitem__("image", entry))
    report = Report(kind="build")
    report.add(Check("image built", True, f"{repo}:{', '.join(tags)}", value=image_id[:19]))
    report.details = {"version": record.version, "image": entry, "context": str(context),
                      "seconds": {"context": round(prepared - started, 2), "build": round(built - prepared, 2),
                                  "total": round(built - started, 2)},
                      "cached_steps": sum("Using cache" in s for s in steps),
                      "size_mb": round(size / 1e6, 1), "base_size_mb": round(base_size / 1e6, 1),
                      "added_mb": round((size - base_size) / 1e6, 1)}
    write_report(report, project.reports_dir, html=_html(report, "Image build"))
    return report


# The variables `mlci push` reads registry credentials from; the Jenkins pipeline binds its credentials to them.
REGISTRY_USER_ENV = "MLCI_REGISTRY_USER"
REGISTRY_PASSWORD_ENV = "MLCI_REGISTRY_PASSWORD"


def registry_auth() -> dict[str, str] | None:
    """Credentials from MLCI_REGISTRY_USER/MLCI_REGISTRY_PASSWORD; None lets Docker's config decide."""
    user, password = os.environ.get(REGISTRY_USER_ENV), os.environ.get(REGISTRY_PASSWORD_ENV)
    if user and password:
        return {"username": user, "password": password}
    return None


def push_image(project: Project, *, ref: str = "latest", on_line: LineSink = lambda line: None) -> Report:
    from mlci.adapters.docker_client import DockerEngine

    registry = open_registry(project)
    record = registry.get_version(ref)
    entry = record.image
    if entry is None:
        raise UsageError(f"model version {record.version} has no image yet", hint="run `mlci build` first")
    engine = DockerEngine()
    auth = registry_auth()
    digest = None
    for tag in entry.tags:
        pushed = engine.push(entry.name, tag, auth=auth, on_line=on_line)
        digest = digest or pushed
    reference = f"{entry.name}@{digest}"
    registry.update(record.version, lambda r: r["image"].update(
        digest=digest, reference=reference, pushed=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    report = Report(kind="push")
    report.add(Check("image pushed", True, reference, value=digest))
    report.details = {"version": record.version, "reference": reference, "tags": list(entry.tags)}
    write_report(report, project.reports_dir, html=_html(report, "Image push"))
    return report


def _html(report: Report, title: str) -> str:
    return render("reports/delivery.html.j2", title=title, ok=report.ok, report=report)


def pushed_reference(record: ModelVersion, *, hint: str = "run `mlci build` and `mlci push` first") -> str:
    """The pushed image (``name@digest``) of a version; UsageError (exit 2) when it was never pushed."""
    image = record.image
    if image is None or not image.reference:
        raise UsageError(f"model version {record.version} has no pushed image", hint=hint)
    return image.reference
