"""The kubernetes target: Deployment, Service (and HPA) manifests, applied and rolled out with kubectl.

A live experiment (mlci.ops.deliver.experiment) runs in the same pods: the server container runs the
champion's image, and an init container runs the challenger's own image (by digest) to copy the
challenger's one-version registry into an ``emptyDir`` volume that the server mounts read-only and reads
the challenger from (CONTAINER_EXPERIMENT_REGISTRY). Kubernetes runs every init container to completion
before it starts the app containers, and the containers of a pod share its emptyDir volumes
(kubernetes.io/docs/concepts/workloads/pods/init-containers/, .../concepts/storage/volumes/#emptydir);
``command`` replaces the image's ENTRYPOINT (.../tasks/inject-data-application/define-command-argument-container/).
Promoting or stopping renders the Deployment again without the experiment: the init container and the
volume go, and the server runs the version that stays.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import replace
from typing import Any

from mlci.adapters.commands import KUBECTL_TIMEOUT, last_lines, run_command
from mlci.core.atomic import atomic_write_text
from mlci.core.config import Environment, Project
from mlci.core.records import Deployment, Experiment, ModelVersion
from mlci.core.reports import Check, Report
from mlci.errors import ServiceError
from mlci.ops.deliver.history import activate, active_deployment, record_attempt, set_status, utc_now
from mlci.ops.deliver.image import image_section, pushed_reference
from mlci.ops.deliver.report import LineSink, finish_report
from mlci.ops.deliver.settings import (
    CONTAINER_EXPERIMENT_REGISTRY,
    container_environment,
    serve_settings,
    with_experiment,
)
from mlci.ops.model.registry import open_registry
from mlci.ops.reporting.render import render
from mlci.serve.settings import GRACEFUL_SHUTDOWN_SECONDS

# Where an mlci image keeps its one-version registry (templates/docker/Dockerfile.j2, MLCI_SERVE_REGISTRY).
IMAGE_REGISTRY = "/app/registry"
# Run by the init container with the challenger's image: its Python copies the image's registry into the
# shared volume (no shell or coreutils needed in the image). Entry by entry, because the volume's own
# directory belongs to root (mode 0777): copying its metadata too (copytree's last step) is refused.
COPY_REGISTRY = ("import os, shutil, sys; source, target = sys.argv[1:]\n"
                 "for name in os.listdir(source):\n"
                 "    path = os.path.join(source, name)\n"
                 "    (shutil.copytree if os.path.isdir(path) else shutil.copy2)(path, os.path.join(target, name))")
# A pod-template label naming the running experiment, so its guardrails read only pods that run it (not a
# pod of the previous ReplicaSet still terminating).
EXPERIMENT_LABEL = "mlci/experiment"
# Stopping a pod: the API server marks it terminating, and, at the same time, the control plane takes it
# out of the Service's EndpointSlices and the kubelet runs the container's preStop hook, then sends SIGTERM
# (kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination). kube-proxy on every node
# learns of the removal a little later, so without a hook the server could stop listening while
# connections are still sent to it. The hook waits ``pre_stop_seconds`` and keeps serving meanwhile. It is
# an ``exec`` of the image's own Python (an mlci image may have no ``sleep`` binary); the ``sleep``
# lifecycle action (KEP-3960) is alpha in 1.29 and on by default only from 1.30, and mlci validates its
# manifests for 1.28 too (tests/test_k8s_manifests.py).
# The hook's time counts against terminationGracePeriodSeconds: the kubelet's ``killContainer``
# (pkg/kubelet/kuberuntime/kuberuntime_container.go) runs it for at most the grace period, then stops the
# container with what is left of it (at least ``minimumGracePeriodInSeconds``, 2 s), SIGTERM then SIGKILL.
# So the grace period is the hook, the server's own graceful shutdown, and a margin to flush and exit.
SHUTDOWN_MARGIN_SECONDS = 10
DIGEST_HINT = "run `mlci build` and `mlci push` first; Kubernetes pulls by digest"


def kubernetes_manifests(project: Project, *, env_name: str, env: Environment, record: ModelVersion,
                         experiment: Experiment | None = None) -> str:
    """The Deployment, Service (and HPA) of ``record`` on ``env_name``, with ``experiment``'s challenger
    beside it when one is given."""
    reference = pushed_reference(record, hint=DIGEST_HINT)
    name = deployment_name(project, env_name)
    settings = with_experiment(project, serve_settings(project, ref=str(record.version), port=env.port,
                                                       env_name=env_name), experiment)
    context = {"name": name, "namespace": env.namespace, "project": project.config.project, "env": env_name,
               "version": record.version, "image": reference, "port": env.port,
               "replicas": env.replicas, "autoscale_max": env.autoscale_max, "cpu": env.cpu,
               "memory": env.memory, "health_timeout": int(env.health_timeout),
               "environment": container_environment(settings),
               "predictions_claim": env.predictions_claim, "user_id": image_section(project).user_id,
               "challenger": _challenger(project, experiment), "experiment_label": EXPERIMENT_LABEL,
               "pre_stop": pre_stop_command(env.pre_stop_seconds),
               "grace_seconds": env.pre_stop_seconds + GRACEFUL_SHUTDOWN_SECONDS + SHUTDOWN_MARGIN_SECONDS}
    documents = [render("kubernetes/deployment.yaml.j2", **context), render("kubernetes/service.yaml.j2", **context)]
    if env.autoscale_max:
        documents.append(render("kubernetes/hpa.yaml.j2", **context))
    return "---\n".join(documents)


def pre_stop_command(seconds: int) -> list[str] | None:
    """The server container's preStop ``exec`` command: wait ``seconds`` (None: no hook)."""
    return ["python", "-c", f"import time; time.sleep({seconds})"] if seconds else None


def _challenger(project: Project, experiment: Experiment | None) -> dict[str, Any] | None:
    """What the template needs for the experiment's init container and volume (None: no experiment)."""
    if experiment is None:
        return None
    record = open_registry(project).get_version(str(experiment.challenger))
    return {"version": record.version, "experiment": experiment.id, "mode": experiment.mode,
            "image": pushed_reference(record, hint=DIGEST_HINT + " (the challenger's image supplies its model)"),
            "command": ["python", "-c", COPY_REGISTRY, IMAGE_REGISTRY, CONTAINER_EXPERIMENT_REGISTRY],
            "mount": CONTAINER_EXPERIMENT_REGISTRY}


def deployment_name(project: Project, env_name: str) -> str:
    return f"{project.config.project}-{env_name}"[:63].lower()


def deploy_kubernetes(project: Project, *, env_name: str, env: Environment, record: ModelVersion,
                      experiment: Experiment | None, kind: str, render_only: bool, on_line: LineSink) -> Report:
    text = kubernetes_manifests(project, env_name=env_name, env=env, record=record, experiment=experiment)
    path = project.reports_dir / "kubernetes" / f"{env_name}.yaml"
    atomic_write_text(path, text)
    report = Report(kind=kind)
    report.details = {"env": env_name, "version": record.version, "target": "kubernetes", "manifests": str(path)}
    report.add(Check("render", True, str(path)))
    if render_only:
        return finish_report(project, report)
    base = _kubectl_base(env, hint=f"apply {path} yourself, or install kubectl; "
                         "--render-only writes the manifests without applying them")
    name = f"deployment/{deployment_name(project, env_name)}"
    _kubectl(base + ["apply", "-f", str(path)], "apply")
    on_line(f"{kind}: waiting for the rollout of {name}")
    status = run_command(base + ["rollout", "status", name, f"--timeout={int(env.health_timeout)}s"],
                         what="kubectl rollout status", timeout=env.health_timeout + KUBECTL_TIMEOUT,
                         hint=_KUBECTL_HINT)
    ok = status.returncode == 0
    last_line = ((status.stdout or status.stderr).strip().splitlines() or [""])[-1]
    report.add(Check("rollout", ok, last_line))
    registry = open_registry(project)
    previous = active_deployment(registry, env_name)
    entry = Deployment(id=uuid.uuid4().hex, env=env_name, version=record.version, target="kubernetes",
                       image=pushed_reference(record), time=utc_now(), kind=kind, status="active",
                       handle={"namespace": env.namespace, "deployment": name},
                       # the Service (in-cluster by default); the guardrails read every pod (experiment_pod_metrics)
                       url=env.url or f"http://{deployment_name(project, env_name)}.{env.namespace}.svc:{env.port}",
                       extra={"experiment": experiment.id if experiment else None})
    if not ok:
        _kubectl(base + ["rollout", "undo", name], "rollout undo")
        record_attempt(registry, replace(entry, status="failed"))
        report.add(Check("switch", False, "rollout undone; the previous ReplicaSet serves"))
        return finish_report(project, report)
    activate(registry, entry)
    if previous:
        set_status(registry, previous, "rolled_back" if kind == "rollback" else "retired")
    report.add(Check("switch", True, f"version {record.version} rolled out"))
    return finish_report(project, report)


_KUBECTL_HINT = "check the cluster connection (kubectl config current-context)"


def _kubectl_base(env: Environment, *, hint: str) -> list[str]:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise ServiceError("kubectl is not installed on this machine", hint=hint)
    return [kubectl] + (["--context", env.kubectl_context] if env.kubectl_context else []) + ["-n", env.namespace]


# -- the experiment's /metrics, read from every ready pod ---------------------------------------------
#
# Through the Service each look would reach one replica (kube-proxy picks an endpoint per connection), so
# the guardrails read every pod: list the Deployment's pods that run this experiment, keep the Ready ones
# that are not terminating (the same pods a Service sends traffic to: the Ready condition,
# kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-conditions; a deleted pod keeps running
# through its grace period with ``metadata.deletionTimestamp`` set, .../pod-lifecycle/#pod-termination),
# and read each one's /metrics through the API server's pod proxy,
# ``/api/v1/namespaces/{namespace}/pods/{name}:{port}/proxy/{path}`` (the "connect GET requests to proxy of
# Pod" operation of the core/v1 API; the ``name:port`` form is parsed by ``ResourceLocation`` in kubernetes
# pkg/registry/core/pod/strategy.go). That works wherever kubectl works, inside the cluster or not.


def experiment_pod_metrics(project: Project, *, env_name: str, experiment_id: str) -> tuple[dict[str, str], list[str]]:
    """Each ready pod's /metrics text (pod name -> text), and what was left out and why. A pod that goes
    away between the listing and its read (a rollout or a scale-down terminated it) is left out and named;
    its counters went with it, as a restarted server's do. Any other kubectl failure is a ServiceError."""
    from mlci.ops.deliver.history import environment

    env = environment(project, env_name)
    base = _kubectl_base(env, hint="install kubectl to read the experiment's metrics from every pod")
    selector = f"app.kubernetes.io/name={deployment_name(project, env_name)},{EXPERIMENT_LABEL}={experiment_id}"
    listed = ready_pods(base, selector)
    texts: dict[str, str] = {}
    left_out: list[str] = []
    for pod in listed:
        answer = run_command(base + ["get", "--raw", f"/api/v1/namespaces/{env.namespace}/pods/{pod}:{env.port}"
                                     "/proxy/metrics"], what="kubectl get --raw (pod proxy)",
                             timeout=KUBECTL_TIMEOUT, hint=_KUBECTL_HINT)
        if answer.returncode == 0:
            texts[pod] = answer.stdout
        elif pod not in ready_pods(base, selector):
            left_out.append(f"pod {pod} went away before it was read")
        else:
            raise ServiceError(f"kubectl could not read pod {pod}'s /metrics: {last_lines(answer.stderr)}",
                               hint=_KUBECTL_HINT)
    return texts, left_out


def ready_pods(base: list[str], selector: str) -> list[str]:
    """Names of the pods matching ``selector`` that are Ready and not terminating."""
    return [pod["metadata"]["name"] for pod in _ready_pod_objects(base, selector)]


def _ready_pod_objects(base: list[str], selector: str) -> list[dict[str, Any]]:
    """The pods matching ``selector`` that are Ready and not terminating (``kubectl get pods -o json``
    answers a v1 List of Pods)."""
    answer = run_command(base + ["get", "pods", "-l", selector, "-o", "json"], what="kubectl get pods",
                         timeout=KUBECTL_TIMEOUT, check=True, hint=_KUBECTL_HINT)
    try:
        return [pod for pod in json.loads(answer.stdout)["items"] if _serves(pod)]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ServiceError(f"kubectl get pods answered something other than a list of pods ({exc})",
                           hint=_KUBECTL_HINT) from None


def unlabelled_pods_reason(project: Project, *, env_name: str, experiment: Experiment) -> str | None:
    """Why an experiment's guardrails read no pod when the Deployment's ready pods lack its label (they were
    rendered before pods were labelled with their experiment), with the deploy that renders them again
    (a deploy of the champion keeps the running experiment); None when that is not the reason."""
    from mlci.ops.deliver.history import environment

    env = environment(project, env_name)
    base = _kubectl_base(env, hint="install kubectl to read the experiment's metrics from every pod")
    name = deployment_name(project, env_name)
    unlabelled = [pod for pod in _ready_pod_objects(base, f"app.kubernetes.io/name={name}")
                  if (pod["metadata"].get("labels") or {}).get(EXPERIMENT_LABEL) != experiment.id]
    if not unlabelled:
        return None
    return (f"no pod carries the label {EXPERIMENT_LABEL}={experiment.id}: {len(unlabelled)} ready pod"
            f"{'s' if len(unlabelled) != 1 else ''} of {name} run without it (rendered before mlci labelled "
            "experiment pods, or for another experiment); run "
            f"`mlci deploy --env {env_name} --model {experiment.champion}` to render them again with it "
            "(the experiment goes on)")


def _serves(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _kubectl(command: list[str], what: str) -> None:
    run_command(command, what=f"kubectl {what}", timeout=KUBECTL_TIMEOUT, check=True, hint=_KUBECTL_HINT)
