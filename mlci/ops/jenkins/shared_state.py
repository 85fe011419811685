"""Where the lifecycle state lives, seen from Jenkins: every job must reach the same registry.

Pure config logic (no Jenkins client), so `mlci config check` can warn without loading one.
"""

from __future__ import annotations

from pathlib import Path

from mlci.core.config import Config, Project, RegistrySection


def jenkins_registry(config: Config) -> tuple[RegistrySection, str]:
    """The registry the Jenkins jobs use and its config key: ``jenkins.registry`` when set, else ``registry``."""
    if config.jenkins.registry is not None:
        return config.jenkins.registry, "jenkins.registry"
    return config.registry, "registry"


def workspace_registry_problem(project: Project) -> str | None:
    """Why a local registry inside the workspace cannot serve this project's Jenkins jobs (None: it can).

    Each job has its own workspace (``${JENKINS_HOME}/workspace/${ITEM_FULL_NAME}``, jenkinsci/jenkins
    ``Jenkins.java``/``Slave.getWorkspaceFor``) and Kubernetes pod agents lose theirs after the build, so a
    relative registry path gives the nightly job a registry the commit job never wrote to.
    """
    config = project.config
    registry, key = jenkins_registry(config)
    if registry.backend != "local" or Path(registry.path).is_absolute():
        return None
    reasons = ["the commit and nightly jobs each have their own workspace"]
    if config.jenkins.agent.kubernetes_yaml:
        reasons.append("Kubernetes pod agents lose their workspace after each build")
    return f"{key}.path '{registry.path}' is inside the workspace, but " + " and ".join(reasons)


WORKSPACE_REGISTRY_HINT = ("set registry.backend: mlflow (with registry.tracking_uri), or an absolute "
                           "registry.path on storage every agent mounts; or keep `registry` for the laptop and "
                           "give the Jenkins jobs their own in jenkins.registry (e.g. {backend: mlflow})")


def registry_warnings(project: Project) -> list[str]:
    """What `mlci config check` warns about: fine on a laptop, loses the lifecycle on Jenkins."""
    problem = workspace_registry_problem(project)
    if problem is None:
        return []
    return [f"{project.config_path.name}: {problem}; `mlci jenkins sync` refuses it (hint: {WORKSPACE_REGISTRY_HINT}; "
            "see docs/registry.md)"]
