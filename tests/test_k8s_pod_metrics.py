"""Which pods the kubernetes guardrails read, and how kubectl's failures surface (exit 3). A small
``kubectl`` on PATH answers with the shapes the API server gives (a v1 List of Pods; the pod proxy's body, or
``Error from server (NotFound)``); the Docker-backed end-to-end test is in tests/test_k8s_experiment_pod.py."""

from __future__ import annotations

import json
import os
import sys

import pytest

from mlci.core.config import load_project
from mlci.errors import ServiceError
from mlci.ops.deliver.kubernetes import experiment_pod_metrics
from tests.serving_support import copy_example

EXPOSITION = 'mlci_experiment_batches_total{role="challenger"} 4.0\n'


def _pod(name: str, ready: str, terminating: bool = False, experiment: str | None = "e1") -> dict:
    labels = {"app.kubernetes.io/name": "credit-risk-production", **({"mlci/experiment": experiment} if experiment
                                                                      else {})}
    metadata = {"name": name, "namespace": "default", "labels": labels}
    if terminating:
        metadata["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": ready}]}}


@pytest.fixture
def kubectl(tmp_path, monkeypatch):
    """Install a kubectl that answers ``get pods`` with ``pods`` (``later`` from the second listing on) and
    ``get --raw`` from ``raw`` (pod name -> body, or None for NotFound); returns the file of its calls."""
    def listing(pods: list[dict] | str) -> str:
        return pods if isinstance(pods, str) else json.dumps({"apiVersion": "v1", "kind": "List", "items": pods})

    def install(pods: list[dict] | str, raw: dict[str, str | None], list_exit: int = 0,
                later: list[dict] | None = None):
        calls = tmp_path / "calls.jsonl"
        script = tmp_path / "bin" / "kubectl"
        script.parent.mkdir(exist_ok=True)
        script.write_text(f"""#!{sys.executable}
import json, os, sys
calls = {str(calls)!r}
listed = os.path.exists(calls) and any('"-l"' in line for line in open(calls))
open(calls, "a").write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if "pods" in args and "-l" in args:
    if {list_exit}:
        print("The connection to the server localhost:8080 was refused", file=sys.stderr)
        sys.exit({list_exit})
    text = {listing(later)!r} if listed and {later is not None} else {listing(pods)!r}
    wanted = [term.split("=", 1) for term in args[args.index("-l") + 1].split(",")]
    try:  # the API server answers the pods that match the label selector
        answer = json.loads(text)
        answer["items"] = [p for p in answer["items"] if all(p["metadata"]["labels"].get(k) == v for k, v in wanted)]
        text = json.dumps(answer)
    except ValueError:
        pass
    print(text)
    sys.exit(0)
name = args[args.index("--raw") + 1].split("/pods/")[1].split(":")[0]
body = {raw!r}.get(name)
if body is None:
    print(f'Error from server (NotFound): pods "{{name}}" not found', file=sys.stderr)
    sys.exit(1)
sys.stdout.write(body)
""")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")
        return calls
    return install


@pytest.fixture
def project(tmp_path):
    return load_project(copy_example(tmp_path))


def test_only_ready_pods_that_are_not_terminating_are_read_through_the_pod_proxy(project, kubectl):
    calls = kubectl([_pod("a", "True"), _pod("b", "False"), _pod("c", "True", terminating=True), _pod("d", "True")],
                    {"a": EXPOSITION, "b": EXPOSITION, "c": EXPOSITION, "d": EXPOSITION})
    texts, left_out = experiment_pod_metrics(project, env_name="production", experiment_id="e1")
    assert sorted(texts) == ["a", "d"] and left_out == []
    argv = [json.loads(line) for line in calls.read_text().splitlines()]
    assert argv[0][-5:] == ["get", "pods", "-l", "app.kubernetes.io/name=credit-risk-production,mlci/experiment=e1",
                            "-o", "json"][-5:]
    assert argv[0][:2] == ["-n", "default"]
    assert [a[-1] for a in argv[1:]] == ["/api/v1/namespaces/default/pods/a:8080/proxy/metrics",
                                         "/api/v1/namespaces/default/pods/d:8080/proxy/metrics"]


def test_a_ready_pod_whose_read_fails_is_an_error(project, kubectl):
    kubectl([_pod("a", "True"), _pod("b", "True")], {"a": EXPOSITION, "b": None})
    # b answers NotFound but is still listed ready: not a vanished pod, so the read is an error
    with pytest.raises(ServiceError, match="could not read pod b's /metrics: Error from server \\(NotFound\\)"):
        experiment_pod_metrics(project, env_name="production", experiment_id="e1")


def test_a_pod_that_left_the_listing_is_named_and_its_peers_still_read(project, kubectl):
    # b's read fails, and the second listing no longer has b: it went away in between
    kubectl([_pod("a", "True"), _pod("b", "True")], {"a": EXPOSITION, "b": None}, later=[_pod("a", "True")])
    texts, left_out = experiment_pod_metrics(project, env_name="production", experiment_id="e1")
    assert list(texts) == ["a"] and left_out == ["pod b went away before it was read"]


@pytest.mark.parametrize("pods, list_exit, message", [
    ([], 1, "kubectl get pods failed: The connection to the server localhost:8080 was refused"),
    ("<html>proxy login</html>", 0, "kubectl get pods answered something other than a list of pods"),
])
def test_kubectl_failures_are_service_errors(project, kubectl, pods, list_exit, message):
    kubectl(pods, {}, list_exit=list_exit)
    with pytest.raises(ServiceError, match=message) as raised:
        experiment_pod_metrics(project, env_name="production", experiment_id="e1")
    assert raised.value.exit_code == 3


def test_without_kubectl_the_guardrails_cannot_be_read_and_say_why(project, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceError, match="kubectl is not installed") as raised:
        experiment_pod_metrics(project, env_name="production", experiment_id="e1")
    assert raised.value.exit_code == 3


@pytest.mark.parametrize("pods, raw", [
    ([], {}),                                              # the cluster refuses the listing (below)
    ([_pod("a", "True")], {"a": None}),                    # a ready pod cannot be read
])
def test_unreadable_pods_leave_the_guardrails_unread_as_an_unreachable_url_does(project, kubectl, pods, raw):
    from mlci.core.records import Deployment, Experiment
    from mlci.ops.deliver.experiment import guardrail_checks, guardrail_numbers

    kubectl(pods, raw, list_exit=0 if pods else 1)
    deployment = Deployment(id="d1", env="production", version=2, target="kubernetes", time="t", status="active",
                            kind="shadow", url="http://svc:8080")
    experiment = Experiment.from_dict({"id": "e1", "env": "production", "mode": "shadow", "champion": 1,
                                       "challenger": 2, "started": "t", "status": "running"})
    numbers = guardrail_numbers(project, "production", deployment, experiment)
    assert isinstance(numbers, str) and "kubectl" in numbers
    [check] = guardrail_checks(experiment, numbers)
    assert check.skipped and check.message.startswith("not read: kubectl")


def _running_shadow():
    """A shadow experiment (e1, champion 1) and its active kubernetes deployment."""
    from mlci.core.records import Deployment, Experiment

    deployment = Deployment(id="d1", env="production", version=1, target="kubernetes", time="t", status="active",
                            kind="shadow", url="http://svc:8080")
    experiment = Experiment.from_dict({"id": "e1", "env": "production", "mode": "shadow", "champion": 1,
                                       "challenger": 2, "started": "t", "status": "running"})
    return deployment, experiment


@pytest.mark.parametrize("other", [None, "an-earlier-experiment"])
def test_pods_rendered_without_the_experiments_label_are_named_with_the_command_that_relabels_them(
        project, kubectl, other):
    """An experiment started before its pods were labelled: no pod matches its label, so its guardrails
    would read nothing, and it could never be promoted. The reason says which label is missing and that a
    deploy of the champion renders the pods again with it (the running experiment is kept)."""
    from mlci.ops.deliver.experiment import guardrail_checks, guardrail_numbers

    kubectl([_pod("a", "True", experiment=other), _pod("b", "True", experiment=other), _pod("c", "False")],
            {"a": EXPOSITION, "b": EXPOSITION})
    deployment, experiment = _running_shadow()
    numbers = guardrail_numbers(project, "production", deployment, experiment)
    assert numbers == ("no pod carries the label mlci/experiment=e1: 2 ready pods of credit-risk-production run "
                       "without it (rendered before mlci labelled experiment pods, or for another experiment); "
                       "run `mlci deploy --env production --model 1` to render them again with it "
                       "(the experiment goes on)")
    [check] = guardrail_checks(experiment, numbers)
    assert check.skipped and check.message == f"not read: {numbers}"


def test_no_ready_pod_at_all_is_not_mistaken_for_a_missing_label(project, kubectl):
    from mlci.ops.deliver.experiment import guardrail_numbers

    kubectl([_pod("a", "False", experiment=None), _pod("b", "True", terminating=True, experiment=None)], {})
    deployment, experiment = _running_shadow()
    assert guardrail_numbers(project, "production", deployment, experiment) == "no ready pod runs the experiment"


def test_experiment_status_says_which_label_is_missing_and_how_to_render_it(tmp_path, kubectl, run_cli):
    """Through `mlci experiment status`: the guardrails of an experiment whose pods carry no label are *not
    read*, with the reason, so the experiment continues and is never promoted on them."""
    import dataclasses

    from mlci.ops.deliver.experiment import plan_for
    from mlci.ops.deliver.experiment_state import record_experiment
    from mlci.ops.deliver.history import activate
    from mlci.ops.model.registry import open_registry
    from tests.serving_support import register_version

    directory = copy_example(tmp_path)
    register_version(directory, seed=0)
    register_version(directory, seed=1)
    project = load_project(directory)
    registry = open_registry(project)
    deployment, experiment = _running_shadow()
    activate(registry, deployment)
    record_experiment(registry, dataclasses.replace(experiment, plan=plan_for(project, "production", mode="shadow",
                                                                             share=None)))
    labels = directory / "labels.csv"
    labels.write_text("request_id,row,default\nnot-logged,0,1\n")  # labels of no logged request yet
    kubectl([_pod("a", "True", experiment=None)], {"a": EXPOSITION})
    code, out, err = run_cli("-C", directory, "--json", "experiment", "status", "--env", "production",
                             "--labels", labels)
    assert code == 0, out + err
    result = json.loads(out)
    guardrails = next(c for c in result["checks"] if c["name"] == "guardrails")
    assert guardrails["message"].startswith("not read: no pod carries the label mlci/experiment=e1: 1 ready pod of ")
    assert "`mlci deploy --env production --model 1`" in guardrails["message"]
    assert result["details"]["decision"] == "continue"
