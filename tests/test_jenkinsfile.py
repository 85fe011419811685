"""Generated Jenkins pipelines: compile with Groovy 2.4, declarative structure, adversarial values that
round-trip literally through Groovy and stay inert in the shell, refused identifiers, and --check.

Groovy runs once per test for all variants: ``groovy.parse_many`` compiles every generated file, and a
recorder harness *executes* every file with a stub of the declarative DSL (each step just records its
arguments), which proves what Groovy actually hands to Jenkins and that nothing else runs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from mlci.core.config import RegistrySection, load_project
from mlci.ops.jenkins.pipelines import PIPELINE_PATHS, check_pipelines, render_pipelines
from tests.test_groovy_escape import ADVERSARIAL

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "credit-risk"
TEMPLATES = REPO / "templates" / "jenkins"


def base_config(**jenkins) -> dict:
    config = yaml.safe_load((EXAMPLE / "mlci.yaml").read_text())
    config["jenkins"] = {**config.get("jenkins", {}), **jenkins}
    return config


def laptop_config(**jenkins) -> dict:
    """The example without its Jenkins registry: the pipelines use `registry` from mlci.yaml."""
    config = base_config(**jenkins)
    config["jenkins"].pop("registry", None)
    return config


def write_project(directory: Path, config: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mlci.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return directory


def variants() -> dict[str, dict]:
    """Config variants covering every template branch."""
    out = {
        "example": base_config(),
        "agent-any": {**base_config(agent={}), "image": None, "environments": {}},
        "docker-agent": base_config(agent={"docker_image": "registry.example.com/ml/py:3.11", "label": "docker",
                                           "docker_args": "-v /var/run/docker.sock:/var/run/docker.sock --gpus all"}),
        "kubernetes-agent": base_config(agent={"kubernetes_yaml": "ci/pod.yaml"}, publish_html=False,
                                        timeout_minutes=5, keep_builds=3),
        "no-retrain": {**base_config(), "monitor": {"schedule": "H H(0-6) * * 1-5"}},
        "shared-registry": {**laptop_config(), "registry": {"path": "/var/lib/mlci/credit-risk"}},
        "workspace-registry": laptop_config(),
        "pipeline-job": base_config(job_type="pipeline"),
        "no-install": base_config(install=None),
        "gpu-train": base_config(stage_agents={"train": {"label": "gpu"}}),
        "extensions": base_config(
            extra_stages=[{"name": "Lint", "before": "validate", "sh": "ruff check ."},
                          {"name": "Notebook-report", "after": "gate", "sh": "make report"}],
            notify=[{"when": "failure", "slack": "#ml-ci"}, {"when": "fixed", "mail": "ml@example.com"},
                    {"when": "always", "slack": "#ml-log"}]),
    }
    mlflow = laptop_config()
    mlflow["registry"] = {"backend": "mlflow", "tracking_uri": "https://mlflow.example.com", "credentials": "mlflow-ci"}
    mlflow["image"] = {**mlflow["image"], "registry_credentials": "registry-push"}
    out["mlflow"] = mlflow
    jenkins_mlflow = base_config()
    jenkins_mlflow["jenkins"]["registry"] = {"backend": "mlflow", "tracking_uri": "https://mlflow.example.com",
                                             "model_name": "credit-risk-ci", "credentials": "mlflow-ci"}
    out["jenkins-registry"] = jenkins_mlflow
    credentials = base_config()
    credentials["image"] = {**credentials["image"], "registry_credentials": "registry-push"}
    credentials["environments"]["canary"] = {"target": "docker", "branch": "release/1.x", "approval": True,
                                             "approvers": ["alice", "release-managers"], "approval_timeout_hours": 4}
    out["credentials"] = credentials
    experiment = base_config()
    experiment["environments"]["production"]["experiment"] = {"mode": "canary", "share": 0.1}
    out["experiment"] = experiment
    for i, value in enumerate(ADVERSARIAL):
        config = base_config(install=value, index_url=value, extra_stages=[{"name": "Extra", "after": "gate",
                                                                            "sh": value}],
                             notify=[{"when": "failure", "slack": value}, {"when": "always", "mail": value}])
        config["jenkins"]["agent"] = {"docker_image": "python:3.11", "docker_args": value}
        config["jenkins"]["registry"] = {"backend": "mlflow", "tracking_uri": value, "credentials": "mlflow-ci",
                                         "path": reports_dir_for(value)}
        config["reports"] = reports_dir_for(value)
        config["monitor"] = {**config["monitor"], "schedule": value}
        out[f"adversarial-{i}"] = config
    return out


# ---- the recorder harness: runs a Jenkinsfile against a stub DSL --------------------------------------

_RECORDER = r"""
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import org.codehaus.groovy.control.CompilerConfiguration

// `env`, `currentBuild` and `scm`: reads answer from the run's environment, writes are recorded.
class RecordedObject {
    String name
    Map values
    List recorded
    int depth
    Object getProperty(String key) { return this.@values.containsKey(key) ? this.@values[key] : null }
    void setProperty(String key, Object value) {
        this.@values[key] = value
        this.@recorded << [assign: this.@name + '.' + key, value: DeclarativeRecorder.describe(value),
                           depth: this.@depth]
    }
}

abstract class DeclarativeRecorder extends Script {
    static int shStatus = 0
    static Map runEnv = [:]
    List recorded = []
    int depth = 0
    Map objects = [:]

    def methodMissing(String name, Object args) {
        Object[] list = args as Object[]
        Map event = [call: name, depth: this.@depth,
                     args: list.findAll { !(it instanceof Closure) }.collect { describe(it) }]
        this.@recorded << event
        this.@depth = this.@depth + 1
        def results = list.findAll { it instanceof Closure }.collect { Closure c -> c.call() }
        this.@depth = this.@depth - 1
        if (name == 'expression') event.result = results[0]
        if (name == 'checkout') return [GIT_BRANCH: runEnv.CHECKOUT_GIT_BRANCH, GIT_COMMIT: 'abc123']
        if (name == 'sh' && list[0] instanceof Map && list[0].returnStdout) return runEnv.SH_STDOUT ?: ''
        return name == 'sh' ? shStatus : 0
    }
    Object getProperty(String name) {
        this.@recorded << [property: name, depth: this.@depth]
        if (name in ['env', 'currentBuild']) {
            if (!this.@objects.containsKey(name)) {
                Map values = name == 'env' ? new LinkedHashMap(runEnv) : [currentResult: 'SUCCESS']
                this.@objects[name] = new RecordedObject(name: name, values: values, recorded: this.@recorded,
                                                         depth: this.@depth)
            }
            return this.@objects[name]
        }
        return name
    }
    void setProperty(String name, Object value) {
        this.@recorded << [assign: name, value: describe(value), depth: this.@depth]
    }
    List events() { return this.@recorded }
    static Object describe(Object v) {
        if (v instanceof GString) return 'GSTRING:' + v.toString()
        if (v instanceof Map) return v.collectEntries { k, x -> [(k.toString()): describe(x)] }
        if (v instanceof List) return v.collect { describe(it) }
        return v
    }
}

def config = new CompilerConfiguration()
config.scriptBaseClass = DeclarativeRecorder.name
new File(args[0]).eachLine('UTF-8') { String line ->
    if (!line.trim()) return
    def parts = line.split('\t')
    DeclarativeRecorder.shStatus = parts[1] as int
    DeclarativeRecorder.runEnv = new JsonSlurper().parseText(parts[2]) as Map
    def shell = new GroovyShell(this.class.classLoader, new Binding(), config)
    def script = shell.parse(new File(parts[0]).getText('UTF-8'), 'Jenkinsfile')
    script.run()
    println '##EVENTS ' + JsonOutput.toJson(script.events()).getBytes('UTF-8').encodeBase64().toString()
}
"""


def run_recorded(groovy, tmp_path: Path, runs: list[tuple]) -> tuple[list[list[dict]], str]:
    """Execute each (Jenkinsfile, exit status every `sh` returns[, env]) in one JVM; returns events and
    stray output. ``env`` holds what `env.X` reads (BRANCH_NAME, CHANGE_ID, ...), CHECKOUT_GIT_BRANCH
    (the GIT_BRANCH `checkout scm` returns) and SH_STDOUT (what `sh(returnStdout: true)` prints)."""
    listing = tmp_path / "recorder-runs.txt"
    listing.write_text("".join(f"{run[0]}\t{run[1]}\t{json.dumps(run[2] if len(run) > 2 else {})}\n"
                               for run in runs))
    harness = tmp_path / "Recorder.groovy"
    harness.write_text(_RECORDER)
    proc = subprocess.run([groovy.path, str(harness), str(listing)], env=groovy.env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(base64.b64decode(line.split(" ", 1)[1])) for line in proc.stdout.splitlines()
              if line.startswith("##EVENTS ")]
    stray = "\n".join(line for line in proc.stdout.splitlines() if not line.startswith("##EVENTS "))
    assert len(events) == len(runs)
    return events, stray


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Every variant rendered to files: {variant: {pipeline path: file}}."""
    root = tmp_path_factory.mktemp("variants")
    out = {}
    for name, config in variants().items():
        project = load_project(write_project(root / name, config))
        files = {}
        for relative, text in render_pipelines(project).items():
            path = root / "rendered" / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            files[relative] = path
        out[name] = files
    return out


# What `env` holds on a real controller for each kind of build (the recorder feeds it to `env.X`):
# a multibranch branch project sets BRANCH_NAME (a pull request's is PR-<n>, with CHANGE_ID); a
# single-branch job with skipDefaultCheckout() sets neither, and its checkout returns GIT_BRANCH.
SCENARIOS = {
    "main": {"BRANCH_NAME": "main"},
    "feature": {"BRANCH_NAME": "feature/faster"},
    "pull-request": {"BRANCH_NAME": "PR-7", "CHANGE_ID": "7", "CHANGE_TARGET": "main"},
    "single-branch-main": {"CHECKOUT_GIT_BRANCH": "origin/main"},
    "single-branch-feature": {"CHECKOUT_GIT_BRANCH": "origin/feature/faster"},
}
DEFAULT_ENV = {**SCENARIOS["main"], "CHECKOUT_GIT_BRANCH": "origin/main",
               "SH_STDOUT": "v3 roc_auc 0.743 Δ+0.007 PASSED"}
SCENARIO_VARIANTS = ("example", "pipeline-job", "credentials")


@pytest.fixture(scope="module")
def recorded(rendered, groovy, tmp_path_factory):
    """Run every rendered file once with `sh` returning 0, each nightly file also with 1 and 3, and the
    commit files of SCENARIO_VARIANTS once per scenario (key: (variant, 'commit', 0, scenario))."""
    runs = []
    for name, files in rendered.items():
        runs.append(((name, "commit", 0), files[PIPELINE_PATHS["commit"]], DEFAULT_ENV))
        for status in (0, 1, 3):
            runs.append(((name, "nightly", status), files[PIPELINE_PATHS["nightly"]], DEFAULT_ENV))
    for name in SCENARIO_VARIANTS:
        for scenario, env in SCENARIOS.items():
            runs.append(((name, "commit", 0, scenario), rendered[name][PIPELINE_PATHS["commit"]], env))
    events, stray = run_recorded(groovy, tmp_path_factory.mktemp("recorder"), [(p, k[2], e) for k, p, e in runs])
    return {key: ev for (key, _, _), ev in zip(runs, events)}, stray


def tree(events: list[dict]) -> list[dict]:
    """The recorded calls as a tree (each node: the event plus ``children``), from their depths."""
    roots: list[dict] = []
    stack: list[dict] = []
    for event in events:
        node = {**event, "children": []}
        while stack and stack[-1]["depth"] >= event["depth"]:
            stack.pop()
        (stack[-1]["children"] if stack else roots).append(node)
        if "call" in event:
            stack.append(node)
    return roots


def _condition_holds(node: dict, env: dict) -> bool:
    """One `when` condition as declarative evaluates it (pipeline-model-definition, when/impl/*.groovy)."""
    call = node["call"]
    subs = [c for c in node["children"] if "call" in c]
    if call == "branch":  # BranchConditionalScript: BRANCH_NAME, else GIT_LOCAL_BRANCH, else false
        name = env.get("BRANCH_NAME") or env.get("GIT_LOCAL_BRANCH")
        return name is not None and name == node["args"][0]
    if call == "changeRequest":  # ChangeRequestConditionalScript: a change request has CHANGE_ID
        return bool(env.get("CHANGE_ID"))
    if call == "expression":  # ExpressionConditionalScript: the closure's value
        return bool(node["result"])
    if call == "anyOf":
        return any(_condition_holds(c, env) for c in subs)
    if call == "allOf":
        return all(_condition_holds(c, env) for c in subs)
    if call == "not":
        return not _condition_holds(subs[0], env)
    raise AssertionError(f"unknown condition {call}")


def stages_that_run(events: list[dict], env: dict) -> list[str]:
    """Titles of the stages (nested ones included) whose own and enclosing `when` blocks all hold."""
    out: list[str] = []

    def walk(nodes: list[dict], enabled: bool) -> None:
        for node in nodes:
            if node.get("call") == "stage":
                when = next((c for c in node["children"] if c.get("call") == "when"), None)
                holds = enabled and (when is None or all(
                    _condition_holds(c, env) for c in when["children"]
                    if "call" in c and c["call"] not in ("beforeAgent", "beforeInput", "beforeOptions")))
                if holds:
                    out.append(node["args"][0])
                walk(node["children"], holds)
            elif "children" in node:
                walk(node["children"], enabled)

    walk(tree(events), True)
    return out


def stage_events(events: list[dict], title: str) -> list[dict]:
    """The events of one stage: from its `stage` call to the next event at the same depth or above."""
    start = next(i for i, e in enumerate(events) if e.get("call") == "stage" and e["args"] == [title])
    depth = events[start]["depth"]
    end = next((i for i in range(start + 1, len(events)) if events[i]["depth"] <= depth), len(events))
    return events[start + 1:end]


def calls(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e.get("call") == name]


def script_of(step: dict) -> str:
    """The shell text of a recorded `sh` call: `sh 'text'` or `sh(script: 'text', ...)`."""
    return step["args"][0] if isinstance(step["args"][0], str) else step["args"][0]["script"]


def assigned(events: list[dict]) -> dict[str, str]:
    return {e["assign"]: e["value"] for e in events if "assign" in e}


# ---- compile and structure ----------------------------------------------------------------------------


def test_every_generated_pipeline_compiles_with_groovy_2_4(rendered, groovy):
    paths = [path for files in rendered.values() for path in files.values()]
    results = groovy.parse_many(paths)
    failures = {str(p): msg for p, (ok, msg) in results.items() if not ok}
    assert not failures
    assert "Groovy Version: 2.4" in groovy.version


def test_no_user_value_and_nothing_else_ran(recorded):
    events, stray = recorded
    assert stray == ""  # any injected println would show up here
    for key, ev in events.items():
        text = json.dumps(ev)
        assert "GSTRING:" not in text, key  # no Groovy interpolation anywhere in generated pipelines


def _outline(events: list[dict]) -> list[tuple[int, str]]:
    return [(e["depth"], e["call"]) for e in events if "call" in e]


def _sections(events: list[dict]) -> list[str]:
    return [name for depth, name in _outline(events) if depth == 1]


def _options(events: list[dict], depth: int = 1) -> list[str]:
    """The calls inside the first `options` block at ``depth``."""
    outline = _outline(events)
    start = outline.index((depth, "options"))
    end = next(i for i in range(start + 1, len(outline)) if outline[i][0] <= depth)
    return [name for _, name in outline[start + 1:end]]


def test_declarative_structure(recorded):
    events, _ = recorded
    commit = events[("example", "commit", 0)]
    assert _outline(commit)[0] == (0, "pipeline")
    assert _sections(commit) == ["agent", "options", "parameters", "environment", "stages"]
    assert {"property": "none", "depth": 1} in commit  # agent none: each part takes its own agent
    stages = [e["args"][0] for e in commit if e.get("call") == "stage"]
    assert stages == ["On an agent: Validate to Deploy staging", "Checkout", "Set up Python", "Validate", "Train",
                      "Evaluate", "Gate", "Build image", "Push image", "Deploy staging", "Approve production",
                      "On an agent: Deploy production", "Checkout (2)", "Set up Python (2)", "Deploy production"]
    assert _options(commit) == ["skipDefaultCheckout", "logRotator", "buildDiscarder", "timestamps"]
    nightly = events[("example", "nightly", 0)]
    assert _sections(nightly) == ["agent", "triggers", "options", "parameters", "environment", "stages", "post"]
    assert [e["args"][0] for e in nightly if e.get("call") == "stage"] == ["Checkout", "Set up Python", "Monitor"]
    assert _options(nightly) == ["skipDefaultCheckout", "timeout", "logRotator", "buildDiscarder",
                                 "disableConcurrentBuilds", "timestamps"]


def test_commit_pipeline_runs_one_mlci_command_per_stage(recorded):
    events, _ = recorded
    scripts = [script_of(e) for e in calls(events[("example", "commit", 0)], "sh")]
    commands = [s for s in scripts if s.startswith(".venv/bin/mlci") and "describe" not in s]
    assert commands == [".venv/bin/mlci validate", ".venv/bin/mlci train", ".venv/bin/mlci evaluate",
                        ".venv/bin/mlci gate", ".venv/bin/mlci build", ".venv/bin/mlci push",
                        '.venv/bin/mlci deploy --env "$MLCI_DEPLOY_ENV"',
                        '.venv/bin/mlci deploy --env "$MLCI_DEPLOY_ENV"']
    env = assigned(events[("example", "commit", 0)])
    assert "MLCI_PROJECT" not in env  # the project is the repository root here
    assert env["MLCI_INSTALL"] == ".[mlflow]"


def _stage_node(events: list[dict], title: str) -> dict:
    def find(nodes):
        for node in nodes:
            if node.get("call") == "stage" and node["args"] == [title]:
                return node
            found = find(node.get("children", []))
            if found:
                return found
    return find(tree(events))


def _calls_in(node: dict) -> list[str]:
    return [c["call"] for c in node["children"] if "call" in c]


@pytest.mark.parametrize("variant, deploy, no_deploy", [
    ("example", "main", ["feature", "pull-request", "single-branch-main"]),
    ("pipeline-job", "single-branch-main", ["single-branch-feature", "main", "feature", "pull-request"]),
])
def test_production_deploys_from_the_configured_branch_only(recorded, variant, deploy, no_deploy):
    """`when { branch 'main' }` compares BRANCH_NAME, else GIT_LOCAL_BRANCH
    (pipeline-model-definition: when/impl/BranchConditionalScript.groovy; its help says "Only works in
    Multibranch"). A single-branch job with skipDefaultCheckout() has neither: CheckoutScript.groovy
    copies the checkout's variables into env only in the default checkout, and GIT_LOCAL_BRANCH needs
    the LocalBranch extension (git-plugin GitSCM.java). So the `pipeline` job type compares the
    GIT_BRANCH that `checkout scm` returns (git-plugin GitSCM.buildEnvironment: `origin/main`).
    On the previous output, a single-branch job never reached "Deploy production".
    The sandbox allows `[…].contains(…)`: script-security generic-whitelist `method java.util.Collection contains
    java.lang.Object`, which GroovyCallSiteSelector.method reaches by visiting an ArrayList's supertypes first
    (read at script-security-plugin a5f0130aa482; docs/jenkins.md, Sources).
    """
    events, _ = recorded
    every = [e["args"][0] for e in events[(variant, "commit", 0, deploy)] if e.get("call") == "stage"]
    assert stages_that_run(events[(variant, "commit", 0, deploy)], SCENARIOS[deploy]) == every
    assert every[-2:] == ["Set up Python (2)", "Deploy production"]
    for scenario in no_deploy:  # other branches, or a branch variable this job type does not have
        ran = stages_that_run(events[(variant, "commit", 0, scenario)], SCENARIOS[scenario])
        assert ran == ["On an agent: Validate to Deploy staging", "Checkout", "Set up Python",
                       "Validate", "Train", "Evaluate", "Gate"], scenario


@pytest.mark.parametrize("scenario", ["feature", "pull-request"])
def test_pull_requests_and_feature_branches_stop_at_the_gate(recorded, scenario):
    """Pull requests (BRANCH_NAME `PR-7`, CHANGE_ID set) and feature branches run validate → train →
    evaluate → gate, and neither build nor push an image nor deploy anywhere; the previous output deployed
    staging from every branch. (BranchConditionalScript.groovy compares BRANCH_NAME.)"""
    events, _ = recorded
    for variant in ("example", "credentials"):
        ran = stages_that_run(events[(variant, "commit", 0, scenario)], SCENARIOS[scenario])
        assert ran == ["On an agent: Validate to Deploy staging", "Checkout", "Set up Python", "Validate",
                       "Train", "Evaluate", "Gate"], variant
    ran = stages_that_run(events[("pipeline-job", "commit", 0, "single-branch-feature")],
                          SCENARIOS["single-branch-feature"])
    assert not any(t.startswith(("Deploy", "Approve", "Build", "Push")) for t in ran)


def test_approval_holds_no_executor_and_has_its_own_timeout(recorded):
    """The input waits in a stage without an agent under `agent none`, so no executor or workspace is held
    (a pipeline-level agent holds one for the whole run: pipeline-model-definition ModelInterpreter); the
    pipeline has no build-wide timeout that would cover the wait; the approval has its own timeout.
    Milestones before and after: a build passing a milestone cancels older builds that have not passed it
    (pipeline-milestone-step-plugin MilestoneStepExecution.tryToPass/cancelOldersInSight), so a newer
    approved build supersedes older ones still waiting. `submitter` restricts who may approve (without it,
    anyone with Job/BUILD may: pipeline-input-step-plugin InputStepExecution.java).
    Each agent part's timeout is a stage-level option, which ModelInterpreter.evaluateStage runs around
    inDeclarativeAgent, so it also covers the wait for the part's agent (read at pipeline-model-definition-plugin
    42c9dc3e440b)."""
    events, _ = recorded
    commit = events[("credentials", "commit", 0)]
    assert {"property": "none", "depth": 1} in commit
    assert "timeout" not in _options(commit)
    assert "disableConcurrentBuilds" not in _options(commit)  # later commits do not queue behind an approval
    approval = _stage_node(commit, "Approve canary")
    assert _calls_in(approval) == ["when", "steps"]  # no agent
    steps = next(c for c in approval["children"] if c.get("call") == "steps")
    assert _calls_in(steps) == ["milestone", "timeout", "milestone"]
    first, timeout, second = [c for c in steps["children"] if "call" in c]
    assert first["args"][0]["ordinal"] < second["args"][0]["ordinal"]
    assert timeout["args"] == [{"time": 4, "unit": "HOURS"}]
    assert [c["args"] for c in timeout["children"] if c.get("call") == "input"] == [
        [{"message": "Deploy to canary?", "ok": "Deploy", "submitter": "alice,release-managers"}]]
    production = _stage_node(commit, "Approve production")
    ordinals = [c["args"][0]["ordinal"] for c in calls(commit, "milestone")]
    assert ordinals == sorted(ordinals) and len(set(ordinals)) == len(ordinals) == 4
    production_steps = next(c for c in production["children"] if c.get("call") == "steps")
    assert [c["args"] for c in production_steps["children"] if c.get("call") == "timeout"] == [
        [{"time": 24, "unit": "HOURS"}]]  # environments.production.approval_timeout_hours default
    deploy = _stage_node(commit, "On an agent: Deploy canary")
    assert _calls_in(deploy)[:3] == ["when", "agent", "options"]
    when = next(c for c in deploy["children"] if c.get("call") == "when")
    assert _calls_in(when)[0] == "beforeAgent"  # a branch that does not deploy takes no agent either
    parts = [n for n in tree(commit)[0]["children"] if n.get("call") == "stages"][0]["children"]
    for part in parts:
        if part.get("call") == "stage" and "agent" in _calls_in(part):
            options = next(c for c in part["children"] if c.get("call") == "options")
            assert [c["args"] for c in options["children"] if c.get("call") == "timeout"] == [
                [{"time": 60, "unit": "MINUTES"}]]


def test_post_collects_junit_reports_artifacts_html_and_cleans_up(recorded):
    events, _ = recorded
    ev = events[("example", "commit", 0)]
    assert calls(ev, "junit")[0]["args"] == [
        {"testResults": "reports/*.junit.xml", "allowEmptyResults": True}]
    assert calls(ev, "archiveArtifacts")[0]["args"][0]["artifacts"] == "reports/**"
    html = calls(ev, "publishHTML")[0]["args"][0]["target"]
    assert html["reportDir"] == "reports"
    assert html["reportFiles"] == "validate.html, evaluate.html, gate.html, deploy-staging.html"
    # Each environment's deploy writes its own reports (mlci.ops.deliver.report.finish_report), published by its part.
    assert calls(ev, "junit")[1]["args"][0]["testResults"] == "reports/deploy-production.junit.xml"
    shared = events[("shared-registry", "commit", 0)]
    assert calls(shared, "cleanWs")[0]["args"] == [{"deleteDirs": True, "notFailBuild": True}]
    assert not calls(events[("kubernetes-agent", "commit", 0)], "publishHTML")


def test_agents_options_and_credentials(recorded):
    """Kubernetes: without defaultContainer the steps run in the `jnlp` container, which has no Python
    (kubernetes-plugin KubernetesDeclarativeAgentScript.groovy: `describable.defaultContainer ?: 'jnlp'`);
    `yamlFile` is read relative to the repository root (readTrusted)."""
    events, _ = recorded
    assert calls(events[("example", "commit", 0)], "label")[0]["args"] == ["linux"]
    assert {"property": "any", "depth": 3} in events[("agent-any", "commit", 0)]
    docker = events[("docker-agent", "commit", 0)]
    assert calls(docker, "image")[0]["args"] == ["registry.example.com/ml/py:3.11"]
    assert calls(docker, "args")[0]["args"] == ["-v /var/run/docker.sock:/var/run/docker.sock --gpus all"]
    assert calls(docker, "label")[0]["args"] == ["docker"]
    kube = events[("kubernetes-agent", "commit", 0)]
    assert calls(kube, "yamlFile")[0]["args"] == ["ci/pod.yaml"]
    assert calls(kube, "defaultContainer")[0]["args"] == ["mlci"]
    assert calls(events[("kubernetes-agent", "nightly", 0)], "defaultContainer")[0]["args"] == ["mlci"]
    assert calls(kube, "timeout")[0]["args"] == [{"time": 5, "unit": "MINUTES"}]
    assert calls(kube, "logRotator")[0]["args"] == [{"numToKeepStr": "3"}]
    creds = events[("credentials", "commit", 0)]
    binding = calls(creds, "usernamePassword")[0]["args"][0]
    # The variables `mlci push` reads its credentials from (mlci.ops.deliver.image.registry_auth).
    assert binding == {"credentialsId": "registry-push", "usernameVariable": "MLCI_REGISTRY_USER",
                       "passwordVariable": "MLCI_REGISTRY_PASSWORD"}
    push = [e["args"][0] for e in calls(creds, "sh") if "mlci push" in e["args"][0]][0]
    assert push.strip().startswith("set +x")
    canary = _stage_node(creds, "On an agent: Deploy canary")
    when = next(c for c in canary["children"] if c.get("call") == "when")
    assert [c["args"] for c in when["children"] if c.get("call") == "branch"] == [["release/1.x"]]
    no_image = [e["args"][0] for e in calls(events[("agent-any", "commit", 0)], "stage")]
    assert "Build image" not in no_image and not any(s.startswith("Deploy") for s in no_image)


def test_a_stage_can_run_on_other_hardware(recorded):
    """`jenkins.stage_agents.train.label: gpu` puts training on its own agent; the stages around it keep
    the default agent, and every part checks out and installs mlci itself (workspaces are not shared)."""
    events, _ = recorded
    ev = events[("gpu-train", "commit", 0)]
    parts = [e["args"][0] for e in ev if e.get("call") == "stage" and e["depth"] == 2]
    assert parts[:3] == ["On an agent: Validate", "On an agent: Train", "On an agent: Evaluate to Deploy staging"]
    train = _stage_node(ev, "On an agent: Train")
    agent = next(c for c in train["children"] if c.get("call") == "agent")
    assert [c["args"] for c in agent["children"] if c.get("call") == "label"] == [["gpu"]]
    titles = [e["args"][0] for e in stage_events(ev, "On an agent: Train") if e.get("call") == "stage"]
    assert titles == ["Checkout (2)", "Set up Python (2)", "Train"]


def test_nightly_marks_drift_unstable_and_triggers_retraining(recorded):
    events, _ = recorded
    ok = events[("example", "nightly", 0)]
    assert calls(ok, "cron")[0]["args"] == ["H 2 * * *"]
    assert calls(ok, "sh")[-1]["args"] == [{"script": ".venv/bin/mlci monitor", "returnStatus": True}]
    assert not calls(ok, "unstable") and not calls(ok, "build") and not calls(ok, "error")
    drift = events[("example", "nightly", 1)]
    assert calls(drift, "unstable")[0]["args"] == ["drift detected"]
    assert calls(drift, "build")[0]["args"] == [{"job": "credit-risk", "wait": False}]
    assert not calls(drift, "error")
    broken = events[("example", "nightly", 3)]
    assert calls(broken, "error")[0]["args"] == ["mlci monitor failed with exit code 3"]
    assert not calls(broken, "unstable")
    assert not calls(events[("no-retrain", "nightly", 1)], "build")
    assert calls(events[("no-retrain", "nightly", 0)], "cron")[0]["args"] == ["H H(0-6) * * 1-5"]


def test_experiment_environments_start_one_on_commit_and_conclude_it_nightly(recorded):
    events, _ = recorded
    deploy = stage_events(events[("experiment", "commit", 0)], "Deploy production")
    assert calls(deploy, "sh")[0]["args"] == ['.venv/bin/mlci deploy --env "$MLCI_DEPLOY_ENV" --experiment']
    conclude_call = {"script": '.venv/bin/mlci experiment conclude --env "$MLCI_EXPERIMENT_ENV" --if-running',
                     "returnStatus": True}
    kept = stage_events(events[("experiment", "nightly", 0)], "Experiment production")
    assert assigned(kept)["MLCI_EXPERIMENT_ENV"] == "production"
    assert calls(kept, "sh")[0]["args"] == [conclude_call]
    assert not calls(kept, "unstable") and not calls(kept, "error")
    stopped = stage_events(events[("experiment", "nightly", 1)], "Experiment production")
    assert calls(stopped, "unstable")[0]["args"] == ["experiment stopped: the challenger was removed"]
    broken = stage_events(events[("experiment", "nightly", 3)], "Experiment production")
    assert calls(broken, "error")[0]["args"] == ["mlci experiment conclude failed with exit code 3"]
    published = calls(events[("experiment", "nightly", 0)], "publishHTML")[0]["args"][0]["target"]
    assert published["reportFiles"] == "monitor.html, experiment.html"
    plain = events[("example", "nightly", 0)]
    assert not [e for e in calls(plain, "stage") if str(e["args"][0]).startswith("Experiment")]
    assert calls(plain, "publishHTML")[0]["args"][0]["target"]["reportFiles"] == "monitor.html"
    assert calls(stage_events(events[("example", "commit", 0)], "Deploy production"), "sh")[0]["args"] == [
        '.venv/bin/mlci deploy --env "$MLCI_DEPLOY_ENV"']


def test_every_file_starts_with_the_generated_header(rendered):
    for files in rendered.values():
        for path in files.values():
            first = path.read_text().splitlines()[:2]
            assert first[0].startswith("// Generated by mlci ") and "mlci.yaml" in first[0]
            assert "regenerate with `mlci jenkinsfile`" in first[1]


# ---- adversarial values -----------------------------------------------------------------------------


def reports_dir_for(value: str) -> str:
    """The adversarial value as a reports directory: a path may hold no control characters (exit 2)."""
    return re.sub(r"[\x00-\x1f]", "_", value) if "/" not in value else "r"


@pytest.mark.parametrize("index", range(len(ADVERSARIAL)))
def test_adversarial_values_round_trip_literally(recorded, index):
    events, _ = recorded
    value = ADVERSARIAL[index]
    reports = reports_dir_for(value)
    for kind, status in (("commit", 0), ("nightly", 1)):
        ev = events[(f"adversarial-{index}", kind, status)]
        env = assigned(ev)
        assert (env["MLCI_INSTALL"], env["PIP_INDEX_URL"], env["MLFLOW_TRACKING_URI"]) == (value, value, value)
        registry = _jenkins_registry(env)
        assert (registry.backend, registry.tracking_uri, registry.path) == ("mlflow", value, reports_dir_for(value))
        assert calls(ev, "junit")[0]["args"][0]["testResults"] == f"{reports}/*.junit.xml"
        assert calls(ev, "args")[0]["args"] == [value]  # docker agent `args`
        assert calls(ev, "slackSend")[0]["args"][0]["channel"] == value
        assert calls(ev, "mail")[0]["args"][0]["to"] == value
        scripts = [script_of(step) for step in calls(ev, "sh")]
        # The value reaches the shell only as an environment variable, except as the extra stage's own
        # script, which is shell text by definition and arrives byte for byte.
        assert [s for s in scripts if value in s] == ([value] if kind == "commit" else [])
    nightly = events[(f"adversarial-{index}", "nightly", 0)]
    assert calls(nightly, "cron")[0]["args"] == [value]


def _jenkins_registry(env: dict[str, str]):
    """The registry an mlci step opens, given the pipeline's environment (mlci reads MLCI_* as overrides)."""
    overrides = {name: value for name, value in env.items() if name.startswith("MLCI_REGISTRY__")}
    assert overrides
    return load_project(EXAMPLE, environ=overrides).config.registry


def _stub_bin(directory: Path) -> Path:
    """A fake `python3` whose venv's python records its arguments (NUL-separated) instead of installing."""
    stub = directory / "stub-bin"
    stub.mkdir()
    (stub / "python3").write_text(
        "#!/bin/bash\n"
        "mkdir -p .venv/bin\n"
        "printf '#!/bin/bash\\nprintf \"%%s\\\\0\" \"$@\" > \"$ARGS_FILE\"\\n' > .venv/bin/python\n"
        "printf '#!/bin/bash\\necho mlci stub\\n' > .venv/bin/mlci\n"
        "chmod +x .venv/bin/python .venv/bin/mlci\n")
    (stub / "python3").chmod(stat.S_IRWXU)
    return stub


@pytest.mark.parametrize("index", range(len(ADVERSARIAL)))
def test_adversarial_values_are_inert_in_the_shell(recorded, tmp_path, index):
    """Run the set-up step's shell text with bash, the value in the environment as Jenkins passes it."""
    events, _ = recorded
    ev = events[(f"adversarial-{index}", "commit", 0)]
    setup = next(e["args"][0] for e in calls(ev, "sh") if "$MLCI_INSTALL" in e["args"][0])
    stub = _stub_bin(tmp_path)
    args_file = tmp_path / "args"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLCI_")}, **assigned(ev),
           "PATH": f"{stub}:{os.environ['PATH']}", "HOME": str(tmp_path), "ARGS_FILE": str(args_file)}
    proc = subprocess.run(["bash", "-c", setup], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    args = args_file.read_bytes().decode().split("\0")[:-1]
    assert args == ["-m", "pip", "install", "--disable-pip-version-check", ADVERSARIAL[index]]
    assert not list(tmp_path.glob("pwned*"))


# ---- refused identifiers and values -------------------------------------------------------------------


@pytest.mark.parametrize("section, key, value, message", [
    ("jenkins", "agent", {"label": "linux && !x"}, "jenkins.agent.label"),
    ("jenkins", "agent", {"docker_image": "img'), sh('id"}, "jenkins.agent.docker_image"),
    ("image", "registry_credentials", "x'), string(credentialsId:'prod-admin", "image.registry_credentials"),
    ("environments", "a'}{", {"target": "docker"}, "environments"),
    ("environments", "staging", {"target": "docker", "branch": "main$(curl${IFS}x)"},
     "environments.staging.branch"),
    ("monitor", "retrain_job", "../other", "monitor.retrain_job"),
    ("jenkins", "install", "pip\x01", "jenkins.install"),
    ("jenkins", "agent", {"kubernetes_yaml": "../../outside.yaml"}, "jenkins.agent.kubernetes_yaml"),
    ("jenkins", "agent", {"kubernetes_yaml": "ci/pod.yaml", "default_container": "mlci'){"},
     "jenkins.agent.default_container"),
    ("environments", "production", {"target": "docker", "approval": True, "approvers": ["alice", "bob, eve"]},
     "environments.production.approvers"),
    ("jenkins", "stage_agents", {"training": {"label": "gpu"}}, "jenkins.stage_agents.training"),
    ("jenkins", "stage_agents", {"train": {"label": "gpu && !x"}}, "jenkins.stage_agents.train.label"),
    ("jenkins", "extra_stages", [{"name": "x'); sh('id", "after": "gate", "sh": "true"}],
     "jenkins.extra_stages[0].name"),
    ("jenkins", "extra_stages", [{"name": "Lint", "after": "deploy", "sh": "true"}], "jenkins.extra_stages[0].after"),
    ("jenkins", "extra_stages", [{"name": "Gate", "before": "gate", "sh": "true"}], "jenkins.extra_stages[0].name"),
    ("jenkins", "extra_stages", [{"name": "Lint", "sh": "true"}], "jenkins.extra_stages[0]:"),
    ("jenkins", "notify", [{"when": "failure", "slack": "#a", "mail": "a@b"}], "jenkins.notify[0]:"),
    ("jenkins", "notify", [{"when": "failure) { sh 'id' }; always(", "slack": "#a"}], "jenkins.notify[0].when"),
    ("registry", "credentials", "x'), string(credentialsId:'prod-admin", "registry.credentials"),
])
def test_bad_identifiers_are_refused_and_nothing_is_written(run_cli, tmp_path, section, key, value, message):
    config = base_config()
    target = config.setdefault(section, {})
    target[key] = {**(target.get(key) or {}), **value} if isinstance(value, dict) else value
    project = write_project(tmp_path / "project", config)
    code, out, err = run_cli("-C", project, "jenkinsfile")
    assert code == 2, err
    assert message in err and "mlci.yaml" in err
    assert "Traceback" not in err
    assert not (project / "Jenkinsfile").exists() and not (project / "pipelines").exists()


# ---- writing, --check, the repository's own files -------------------------------------------------------


def test_write_then_check_then_stale(run_cli, tmp_path):
    project = write_project(tmp_path / "p", base_config())
    code, out, err = run_cli("-C", project, "jenkinsfile")
    assert code == 0, err
    assert out.splitlines() == [f"wrote {project / 'Jenkinsfile'}",
                                f"wrote {project / 'pipelines/nightly.Jenkinsfile'}"]
    assert run_cli("-C", project, "jenkinsfile")[1].count("unchanged") == 2
    code, out, err = run_cli("-C", project, "jenkinsfile", "--check")
    assert code == 0, err
    assert (project / "reports" / "jenkinsfile.junit.xml").exists()
    jenkinsfile = project / "Jenkinsfile"
    jenkinsfile.write_text(jenkinsfile.read_text().replace("numToKeepStr: '30'", "numToKeepStr: '5'"))
    code, out, err = run_cli("-C", project, "--json", "jenkinsfile", "--check")
    assert code == 1
    assert "-        buildDiscarder(logRotator(numToKeepStr: '5'))" in err
    assert "+        buildDiscarder(logRotator(numToKeepStr: '30'))" in err
    result = json.loads(out)
    assert [c["status"] for c in result["checks"]] == ["fail", "pass"]
    (project / "pipelines" / "nightly.Jenkinsfile").unlink()
    code, out, err = run_cli("-C", project, "jenkinsfile", "--check", "--pipeline", "nightly")
    assert code == 1 and "missing" in out


def test_single_pipeline_to_a_file_and_to_stdout(run_cli, tmp_path):
    project = write_project(tmp_path / "p", base_config())
    code, out, _ = run_cli("-C", project, "jenkinsfile", "--pipeline", "nightly", "-o", "-")
    assert code == 0 and "cron('H 2 * * *')" in out
    target = tmp_path / "ci" / "nightly.groovy"
    assert run_cli("-C", project, "jenkinsfile", "--pipeline", "nightly", "-o", target)[0] == 0
    assert target.read_text() == out
    assert run_cli("-C", project, "jenkinsfile", "--pipeline", "nightly", "-o", target, "--check")[0] == 0
    assert run_cli("-C", project, "jenkinsfile", "-o", "-")[0] == 2


def test_config_in_a_subdirectory_of_a_repository(tmp_path):
    (tmp_path / ".git").mkdir()
    project = load_project(write_project(tmp_path / "ml" / "model-a", base_config()))
    rendered = render_pipelines(project)
    assert set(rendered) == {"Jenkinsfile", "pipelines/nightly.Jenkinsfile"}
    assert "MLCI_PROJECT = 'ml/model-a'" in rendered["Jenkinsfile"]
    assert "junit testResults: 'ml/model-a/reports/*.junit.xml'" in rendered["Jenkinsfile"]


def test_the_repository_root_pipelines_are_up_to_date():
    """The root Jenkinsfile and pipelines/ are the example's generated pipelines: regenerate them with
    `mlci -C examples/credit-risk jenkinsfile` when this fails."""
    report = check_pipelines(load_project(EXAMPLE), write_reports=False)
    assert [c.name for c in report.checks] == [os.path.relpath(REPO / p) for p in PIPELINE_PATHS.values()]
    stale = {c.name: c.details.get("diff") for c in report.checks if not c.passed}
    assert not stale, "\n".join(stale.values())


def test_every_template_expression_goes_through_a_groovy_filter():
    """One escaping function: each {{ ... }} in a Jenkinsfile template ends in |groovy(...) or |groovy_int(...)."""
    expressions = []
    for template in TEMPLATES.glob("*.j2"):
        if template.name.endswith(".html.j2"):
            continue
        expressions += re.findall(r"\{\{(.*?)\}\}", template.read_text(), flags=re.S)
    assert expressions
    macros = set(re.findall(r"\{% macro (\w+)\(", (TEMPLATES / "_macros.j2").read_text()))
    assert {"agent_block", "sh_step", "notifications"} <= macros
    # Allowed besides filtered values: the version, a block's indentation, and calls of the macros
    # (whose own values are filtered; this test reads them too).
    unescaped = [e for e in expressions if not re.search(r"\|\s*groovy(_int)?\([^)]*\)\s*$", e)
                 and not re.search(r"\|\s*groovy_condition\s*$", e)
                 and e.strip() not in ("version", "pad")
                 and not re.fullmatch(rf"\s*m\.({'|'.join(macros)})\(.*\)\s*", e, flags=re.S)
                 and not re.fullmatch(rf"\s*({'|'.join(macros)})\(.*\)\s*", e, flags=re.S)]
    assert unescaped == []


# ---- docker/jenkins: the controller users start ---------------------------------------------------------


def test_controller_has_every_plugin_the_generated_pipelines_use(tmp_path):
    plugins = {line.split(":")[0].strip() for line in (REPO / "docker/jenkins/plugins.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    steps_to_plugins = {"timestamps()": "timestamper", "cleanWs(": "ws-cleanup", "publishHTML(": "htmlpublisher",
                        "withCredentials(": "credentials-binding", "junit ": "junit",
                        "pipeline {": "workflow-aggregator",
                        "docker {": "docker-workflow", "kubernetes {": "kubernetes", "checkout scm": "git"}
    generated = "".join(text for name, config in variants().items() if not name.startswith("adversarial")
                        for text in render_pipelines(load_project(write_project(tmp_path / name, config))).values())
    for step, plugin in steps_to_plugins.items():
        assert step in generated, step
        assert plugin in plugins, plugin
    assert {"configuration-as-code", "job-dsl"} <= plugins


# ---- safe defaults, clean-up, registry, extensions, build page ------------------------------------------


def test_a_new_project_installs_no_unpublished_package(recorded, tmp_path):
    """Without `jenkins.install` the pipelines used to install `mlci==<version>` from the public index, a
    name nobody publishes (a dependency-confusion risk). Now nothing is installed by name: the set-up step
    stops with exit 2 and a message naming the key to set."""
    events, _ = recorded
    for kind in ("commit", "nightly"):
        ev = events[("no-install", kind, 0)]
        assert assigned(ev)["MLCI_INSTALL"] == ""
        assert not any("mlci==" in json.dumps(e) for e in ev)
    setup = next(script_of(e) for e in calls(events[("no-install", "commit", 0)], "sh")
                 if "$MLCI_INSTALL" in script_of(e))
    stub = _stub_bin(tmp_path)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLCI_")}, "MLCI_INSTALL": "",
           "PATH": f"{stub}:{os.environ['PATH']}", "HOME": str(tmp_path), "ARGS_FILE": str(tmp_path / "args")}
    proc = subprocess.run(["bash", "-c", setup], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "jenkins.install is not set" in proc.stderr and "docs/jenkins.md" in proc.stderr
    assert not (tmp_path / "args").exists()  # pip never ran
    assert assigned(events[("example", "commit", 0)]).get("PIP_INDEX_URL") is None


def _ant_regex(pattern: str) -> re.Pattern:
    """An Ant pattern as DirectoryScanner matches it (`**` any directories, `*` within one name)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _clean_workspace(workspace: Path, arguments: dict) -> None:
    """What cleanWs(patterns, deleteDirs) deletes: ws-cleanup Cleanup.java scans with a raw Ant
    DirectoryScanner (no `addDefaultExcludes`, so `.git` is not excluded by default), includes default
    to `**/*`, and deletes every included file (and directory only with deleteDirs)."""
    patterns = arguments.get("patterns", [])
    includes = [_ant_regex(p["pattern"]) for p in patterns if p["type"] == "INCLUDE"] or [_ant_regex("**/*")]
    excludes = [_ant_regex(p["pattern"]) for p in patterns if p["type"] == "EXCLUDE"]
    for path in sorted(workspace.rglob("*"), reverse=True):
        relative = path.relative_to(workspace).as_posix()
        chosen = any(r.fullmatch(relative) for r in includes) and not any(r.fullmatch(relative) for r in excludes)
        if chosen and path.is_file():
            path.unlink()
        elif chosen and path.is_dir() and arguments.get("deleteDirs"):
            shutil.rmtree(path)


def test_cleanup_never_breaks_the_repository_and_keeps_a_workspace_registry(recorded, tmp_path):
    """The old `cleanWs(patterns: [[pattern: '<registry>/**', type: 'EXCLUDE']])` deleted every file
    inside `.git` (ws-cleanup Cleanup.java); the next `checkout scm` then found a corrupt repository and
    re-cloned over the workspace, registry included (git-plugin GitSCM.java, git-client CliGitAPIImpl)."""
    events, _ = recorded
    git = {"env": {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                   "GIT_COMMITTER_EMAIL": "t@t"}, "capture_output": True, "text": True, "timeout": 30}
    for kind in ("commit", "nightly"):
        arguments = calls(events[("workspace-registry", kind, 0)], "cleanWs")
        assert arguments
        for cleanup in arguments:
            workspace = tmp_path / f"{kind}-{len(list(tmp_path.iterdir()))}"
            workspace.mkdir()
            subprocess.run(["git", "init", "-q", str(workspace)], check=True, **git)
            (workspace / "mlci.yaml").write_text("project: x\n")
            subprocess.run(["git", "-C", str(workspace), "add", "."], check=True, **git)
            subprocess.run(["git", "-C", str(workspace), "commit", "-qm", "x"], check=True, **git)
            (workspace / ".mlci/registry/v1").mkdir(parents=True)
            (workspace / ".mlci/registry/v1/model.skops").write_text("model")
            (workspace / "reports").mkdir()
            (workspace / "reports/gate.json").write_text("{}")
            _clean_workspace(workspace, cleanup["args"][0])
            assert subprocess.run(["git", "-C", str(workspace), "rev-parse", "--verify", "HEAD"], **git).returncode == 0
            assert (workspace / ".mlci/registry/v1/model.skops").exists()
            assert not (workspace / "reports/gate.json").exists()


def test_mlflow_registry_and_credentials_reach_only_the_steps_that_use_them(recorded):
    """MLflow reads MLFLOW_TRACKING_URI and MLFLOW_TRACKING_USERNAME/PASSWORD from the environment; the
    credentials are bound by id with withCredentials around each `sh` that opens the registry (not
    around validate, set-up or checkout), and the nightly job reads the same registry: nothing of the
    commit job's workspace."""
    events, _ = recorded
    mlflow_binding = {"credentialsId": "mlflow-ci", "usernameVariable": "MLFLOW_TRACKING_USERNAME",
                      "passwordVariable": "MLFLOW_TRACKING_PASSWORD"}
    for kind in ("commit", "nightly"):
        ev = events[("mlflow", kind, 0)]
        assert assigned(ev)["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com"
        assert calls(ev, "cleanWs")[0]["args"] == [{"deleteDirs": True, "notFailBuild": True}]
        wrapped = []
        for node, bindings in _credential_blocks(tree(ev)):
            scripts = [script_of(c) for c in _all_nodes(node["children"]) if c.get("call") == "sh"]
            assert bindings[0] == mlflow_binding and len(scripts) == 1
            wrapped.append((scripts[0].replace("set +x\n", ""), len(bindings)))
        unwrapped = [script_of(e) for e in calls(ev, "sh") if script_of(e).replace("set +x\n", "")
                     not in [w for w, _ in wrapped]]
        if kind == "commit":
            assert wrapped == [(".venv/bin/mlci train", 1), (".venv/bin/mlci evaluate", 1), (".venv/bin/mlci gate", 1),
                               (".venv/bin/mlci build", 1), (".venv/bin/mlci push", 2),
                               ('.venv/bin/mlci deploy --env "$MLCI_DEPLOY_ENV"', 1),
                               ('.venv/bin/mlci deploy --env "$MLCI_DEPLOY_ENV"', 1)]
            assert ".venv/bin/mlci validate" in unwrapped
        else:
            assert wrapped == [(".venv/bin/mlci monitor", 1)]
        assert all("MLFLOW_TRACKING_PASSWORD" not in s for s in unwrapped)
    assert "MLFLOW_TRACKING_URI" not in assigned(events[("example", "commit", 0)])


def test_the_jenkins_registry_reaches_every_step_and_the_workspace_keeps_no_registry(recorded):
    """`jenkins.registry` replaces `registry` on Jenkins only: every field reaches each mlci step as an
    MLCI_REGISTRY__* override, its credentials are bound like registry.credentials, and with the
    registry on a server the clean-up keeps nothing; mlci.yaml's local `registry` stays for the laptop."""
    events, _ = recorded
    for kind in ("commit", "nightly"):
        ev = events[("jenkins-registry", kind, 0)]
        env = assigned(ev)
        assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com"
        assert _jenkins_registry(env) == RegistrySection(backend="mlflow", tracking_uri="https://mlflow.example.com",
                                                         model_name="credit-risk-ci", credentials="mlflow-ci")
        assert calls(ev, "cleanWs")[0]["args"] == [{"deleteDirs": True, "notFailBuild": True}]
        bound = [(script_of(c).replace("set +x\n", ""), bindings[0]["credentialsId"])
                 for node, bindings in _credential_blocks(tree(ev))
                 for c in _all_nodes(node["children"]) if c.get("call") == "sh"]
        expected = "monitor" if kind == "nightly" else "train"
        assert (f".venv/bin/mlci {expected}", "mlflow-ci") in bound
    example = assigned(events[("example", "commit", 0)])
    assert _jenkins_registry(example) == RegistrySection(backend="mlflow")
    assert calls(events[("example", "nightly", 0)], "cleanWs")[0]["args"] == [{"deleteDirs": True,
                                                                               "notFailBuild": True}]
    assert not any(name.startswith("MLCI_REGISTRY__") for name in assigned(events[("workspace-registry", "commit", 0)]))
    assert load_project(EXAMPLE, environ={}).config.registry == RegistrySection(path=".mlci/registry")


def _credential_blocks(nodes: list[dict]):
    """(withCredentials node, its usernamePassword bindings): Groovy evaluates the binding list first,
    so the bindings are the calls just before the block, at its depth."""
    pending: list[dict] = []
    for node in nodes:
        if node.get("call") == "usernamePassword":
            pending.append(node["args"][0])
            continue
        if node.get("call") == "withCredentials":
            yield node, pending
        pending = []
        yield from _credential_blocks(node.get("children", []))


def _all_nodes(nodes: list[dict]):
    for node in nodes:
        yield node
        yield from _all_nodes(node.get("children", []))


def test_extra_stages_and_notifications_from_the_config(recorded):
    """Teams add stages and `post` messages in mlci.yaml instead of editing the generated file: stage
    names are allow-listed, the shell text is one single-quoted `sh` literal, the conditions come from
    declarative's post conditions (pipeline-model-definition BuildCondition), and the messages are
    sent by `slackSend` (slack plugin) or `mail` (mailer plugin), neither of which needs an agent."""
    events, _ = recorded
    ev = events[("extensions", "commit", 0)]
    titles = [e["args"][0] for e in ev if e.get("call") == "stage"]
    assert titles[1:9] == ["Checkout", "Set up Python", "Lint", "Validate", "Train", "Evaluate", "Gate",
                           "Notebook-report"]
    assert [script_of(c) for c in calls(stage_events(ev, "Lint"), "sh")] == ["ruff check ."]
    root = tree(ev)[0]
    post = [c for c in root["children"] if c.get("call") == "post"]
    assert len(post) == 1
    conditions = [c["call"] for c in post[0]["children"] if "call" in c]
    assert conditions == ["always", "fixed", "failure"]
    slack = calls(ev, "slackSend")
    assert [s["args"][0]["channel"] for s in slack] == ["#ml-log", "#ml-ci"]
    assert slack[0]["args"][0]["message"].startswith("mlci credit-risk: ")
    assert calls(ev, "mail")[0]["args"][0]["to"] == "ml@example.com"
    nightly = events[("extensions", "nightly", 0)]
    assert [s["args"][0]["channel"] for s in calls(nightly, "slackSend")] == ["#ml-log", "#ml-ci"]
    assert not calls(events[("example", "commit", 0)], "slackSend")


def test_the_build_page_shows_the_gate_verdict(recorded):
    """`currentBuild.description` is set from `mlci jenkins describe`: workflow-support RunWrapper.setDescription is
    @Whitelisted for the current build (read at workflow-support-plugin 3ea02551ef07), and `String.trim` is in
    script-security's generic-whitelist."""
    events, _ = recorded
    ev = events[("example", "commit", 0)]
    assert [e["value"] for e in ev if e.get("assign") == "currentBuild.description"] == [DEFAULT_ENV["SH_STDOUT"]]
    describe = [e for e in calls(ev, "sh") if "describe" in script_of(e)]
    assert describe[0]["args"][0]["returnStdout"] is True
    part = _stage_node(ev, "On an agent: Validate to Deploy staging")
    assert any(e.get("assign") == "currentBuild.description" for e in _all_nodes(part["children"]))


def test_describe_formats_the_gate_report(run_cli, tmp_path):
    from mlci.ops.jenkins.pipelines import describe_gate

    report = {"kind": "gate", "details": {"challenger": "v3"}, "checks": [
        {"name": "roc_auc >= 0.7", "status": "pass", "value": 0.74312, "group": "threshold"},
        {"name": "roc_auc vs champion, max drop 0.01", "status": "pass", "value": 0.001, "group": "champion",
         "details": {"challenger": 0.74312, "champion": 0.736, "delta": 0.00712}},
        {"name": "accuracy[region=east] >= 0.65", "status": "warn", "value": 0.6, "group": "threshold"}]}
    assert describe_gate(report) == "v3 roc_auc 0.743 Δ+0.007 PASSED, 1 warning"
    report["checks"][1]["status"] = "fail"
    assert describe_gate(report) == "v3 roc_auc 0.743 Δ+0.007 FAILED: roc_auc vs champion, max drop 0.01"
    assert describe_gate({"details": {"challenger": "v1"}, "checks": []}) == "v1 PASSED"
    project = write_project(tmp_path / "p", base_config())
    assert run_cli("-C", project, "jenkins", "describe")[:2] == (0, "")
    (project / "reports").mkdir()
    (project / "reports" / "gate.json").write_text(json.dumps(report))
    code, out, err = run_cli("-C", project, "jenkins", "describe")
    assert (code, out.strip()) == (0, "v3 roc_auc 0.743 Δ+0.007 FAILED: roc_auc vs champion, max drop 0.01"), err
    (project / "reports" / "gate.json").write_text("{not json")
    code, out, err = run_cli("-C", project, "jenkins", "describe")
    assert code == 2 and "gate.json" in err and "Traceback" not in err


def test_junit_class_names_keep_file_names_whole():
    """The junit plugin splits a class name at its LAST dot into package and class
    (junit-plugin CaseResult.getPackageName): `mlci.validate.data/train.csv` showed as class `csv`."""
    import xml.etree.ElementTree as ET

    from mlci.core.reports import Check, Report, junit_xml

    report = Report(kind="validate", checks=[Check("rows: count", True, group="data/train.csv")])
    case = ET.fromstring(junit_xml(report)).find(".//testcase")
    package, _, name = case.get("classname").rpartition(".")
    assert (package, name) == ("mlci.validate", "data/train_csv")


def test_each_environment_writes_its_own_deploy_reports(tmp_path):
    """Staging and production deploy in one build; a shared `reports/deploy.*` let the second overwrite
    the first's JUnit results."""
    from mlci.core.reports import Check, Report
    from mlci.ops.deliver.report import finish_report

    project = load_project(write_project(tmp_path / "p", base_config()))
    for env in ("staging", "production"):
        report = Report(kind="deploy", details={"env": env, "version": 1})
        report.add(Check("switch", env == "staging", "x"))
        finish_report(project, report)
    reports = project.reports_dir
    assert sorted(p.name for p in reports.iterdir()) == [  # mlci.css: the stylesheet every HTML report links
        *(f"deploy-{env}.{ext}" for env in ("production", "staging") for ext in ("html", "json", "junit.xml")),
        "mlci.css"]
    assert json.loads((reports / "deploy-staging.json").read_text())["ok"] is True
    assert json.loads((reports / "deploy-production.json").read_text())["ok"] is False


def test_the_documented_pod_template_runs_steps_with_python_and_a_private_docker_engine():
    """docs/jenkins.md's pod template is a valid Pod (Kubernetes schema, strict), its container named
    like `jenkins.agent.default_container`'s default runs the steps (kubernetes-plugin
    KubernetesDeclarativeAgentScript.groovy would use `jnlp` otherwise) and reaches the Docker-in-Docker
    sidecar through a unix socket in a shared emptyDir, not over the pod network."""
    import kubernetes_validate

    from mlci.core.config import JenkinsAgent

    text = (REPO / "docs" / "jenkins.md").read_text()
    pod = yaml.safe_load(re.search(r"```yaml\n(# ci/pod.yaml.*?)```", text, flags=re.S).group(1))
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    steps = containers[JenkinsAgent().default_container]
    assert "python" in steps["image"]
    socket = {e["name"]: e["value"] for e in steps["env"]}["DOCKER_HOST"]
    assert socket.startswith("unix://")
    engine = next(c for name, c in containers.items() if name != JenkinsAgent().default_container)
    assert f"--host={socket}" in engine["args"] and not engine.get("ports")
    shared = {m["name"] for m in steps["volumeMounts"]} & {m["name"] for m in engine["volumeMounts"]}
    assert [v for v in pod["spec"]["volumes"] if v["name"] in shared] == [{"name": "docker-socket", "emptyDir": {}}]


def test_the_examples_jenkins_steps_train_into_mlflow_and_leave_the_workspace_empty(recorded, mlflow_server,
                                                                                      tmp_path, run_cli,
                                                                                      monkeypatch):
    """The environment the example's commit pipeline gives its steps (as Groovy evaluated it), plus the
    controller's MLFLOW_TRACKING_URI, makes a real `mlci train` register the version in MLflow; the
    same copy without those variables (a laptop) sees only its local .mlci/registry."""
    import secrets

    events, _ = recorded
    pipeline_env = {name: value for name, value in assigned(events[("example", "commit", 0)]).items()
                    if name.startswith("MLCI_REGISTRY__")}
    root = tmp_path / "workspace"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlci", "reports"))
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    config["project"] = f"credit-risk-{secrets.token_hex(4)}"  # its own registered model on the shared server
    (root / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = run_cli("-C", root, "train", env={**pipeline_env, "MLFLOW_TRACKING_URI": mlflow_server})
    assert code == 0, err
    assert not (root / ".mlci" / "registry").exists()
    code, out, err = run_cli("-C", root, "--json", "registry", "list")
    assert code == 0, err
    assert [v["version"] for v in json.loads(out)["versions"]] == [1]
    for name in pipeline_env:
        monkeypatch.delenv(name)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    code, out, err = run_cli("-C", root, "--json", "registry", "list")
    assert code == 0, err
    assert json.loads(out)["versions"] == []


def test_every_registry_setting_has_its_variable_in_the_jenkins_environment():
    """The template names each `MLCI_REGISTRY__*` variable by hand; a field added to the registry section
    without its line would silently fall back to the laptop's value on Jenkins."""
    import dataclasses

    from mlci.core.config import RegistrySection

    template = (REPO / "templates" / "jenkins" / "_environment.j2").read_text()
    named = set(re.findall(r"MLCI_REGISTRY__([A-Z_]+) =", template))
    assert named == {f.name.upper() for f in dataclasses.fields(RegistrySection)}
