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
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from mlci.core.config import load_project
from mlci.ops.jenkinsfiles import PIPELINE_PATHS, check_pipelines, render_pipelines
from tests.test_groovy_escape import ADVERSARIAL

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "credit-risk"
TEMPLATES = REPO / "templates" / "jenkins"


def base_config(**jenkins) -> dict:
    config = yaml.safe_load((EXAMPLE / "mlci.yaml").read_text())
    config["jenkins"] = {**config.get("jenkins", {}), **jenkins}
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
        "docker-agent": base_config(agent={"docker_image": "registry.example.com/ml/py:3.11", "label": "docker"}),
        "kubernetes-agent": base_config(agent={"kubernetes_yaml": "ci/pod.yaml"}, publish_html=False,
                                        timeout_minutes=5, keep_builds=3),
        "no-retrain": {**base_config(), "monitor": {"schedule": "H H(0-6) * * 1-5"}},
        "shared-registry": {**base_config(), "registry": {"path": "/var/lib/mlci/credit-risk"}},
    }
    credentials = base_config()
    credentials["image"] = {**credentials["image"], "registry_credentials": "registry-push"}
    credentials["environments"]["canary"] = {"target": "docker", "branch": "release/1.x", "approval": True}
    out["credentials"] = credentials
    experiment = base_config()
    experiment["environments"]["production"]["experiment"] = {"mode": "canary", "share": 0.1}
    out["experiment"] = experiment
    for i, value in enumerate(ADVERSARIAL):
        config = base_config(install=value)
        config["reports"] = value.replace("\n", "_") if "/" not in value else "r"
        config["monitor"] = {**config["monitor"], "schedule": value}
        out[f"adversarial-{i}"] = config
    return out


# ---- the recorder harness: runs a Jenkinsfile against a stub DSL --------------------------------------

_RECORDER = r"""
import groovy.json.JsonOutput
import org.codehaus.groovy.control.CompilerConfiguration

abstract class DeclarativeRecorder extends Script {
    static int shStatus = 0
    List recorded = []
    int depth = 0

    def methodMissing(String name, Object args) {
        Object[] list = args as Object[]
        this.@recorded << [call: name, depth: this.@depth,
                           args: list.findAll { !(it instanceof Closure) }.collect { describe(it) }]
        this.@depth = this.@depth + 1
        list.findAll { it instanceof Closure }.each { Closure c -> c.call() }
        this.@depth = this.@depth - 1
        return name == 'sh' ? shStatus : 0
    }
    Object getProperty(String name) {
        this.@recorded << [property: name, depth: this.@depth]
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
    def shell = new GroovyShell(this.class.classLoader, new Binding(), config)
    def script = shell.parse(new File(parts[0]).getText('UTF-8'), 'Jenkinsfile')
    script.run()
    println '##EVENTS ' + JsonOutput.toJson(script.events()).getBytes('UTF-8').encodeBase64().toString()
}
"""


def run_recorded(groovy, tmp_path: Path, runs: list[tuple[Path, int]]) -> tuple[list[list[dict]], str]:
    """Execute each (Jenkinsfile, exit status every `sh` returns) in one JVM; returns events and stray output."""
    listing = tmp_path / "recorder-runs.txt"
    listing.write_text("".join(f"{path}\t{status}\n" for path, status in runs))
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


@pytest.fixture(scope="module")
def recorded(rendered, groovy, tmp_path_factory):
    """Run every rendered file once with `sh` returning 0, and each nightly file also with 1 and 3."""
    runs = []
    for name, files in rendered.items():
        runs.append(((name, "commit", 0), files[PIPELINE_PATHS["commit"]]))
        for status in (0, 1, 3):
            runs.append(((name, "nightly", status), files[PIPELINE_PATHS["nightly"]]))
    events, stray = run_recorded(groovy, tmp_path_factory.mktemp("recorder"), [(p, k[2]) for k, p in runs])
    return {key: ev for (key, _), ev in zip(runs, events)}, stray


def stage_events(events: list[dict], title: str) -> list[dict]:
    """The events of one stage: from its `stage` call to the next event at the same depth or above."""
    start = next(i for i, e in enumerate(events) if e.get("call") == "stage" and e["args"] == [title])
    depth = events[start]["depth"]
    end = next((i for i in range(start + 1, len(events)) if events[i]["depth"] <= depth), len(events))
    return events[start + 1:end]


def calls(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e.get("call") == name]


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


@pytest.mark.parametrize("kind", ["commit", "nightly"])
def test_declarative_structure(recorded, kind):
    events, _ = recorded
    outline = _outline(events[("example", kind, 0)])
    assert outline[0] == (0, "pipeline")
    sections = [name for depth, name in outline if depth == 1]
    expected = ["agent", "options", "parameters", "environment", "stages", "post"]
    if kind == "nightly":
        expected.insert(1, "triggers")
    assert sections == expected
    stages = [e["args"][0] for e in events[("example", kind, 0)] if e.get("call") == "stage"]
    assert stages[:2] == ["Checkout", "Set up Python"]
    if kind == "commit":
        assert stages[2:] == ["Validate", "Train", "Evaluate", "Gate", "Build image", "Push image",
                              "Deploy staging", "Deploy production"]
    else:
        assert stages[2:] == ["Monitor"]
    start = outline.index((1, "options"))
    end = next(i for i in range(start + 1, len(outline)) if outline[i][0] <= 1)
    assert [name for _, name in outline[start + 1:end]] == [
        "skipDefaultCheckout", "timeout", "logRotator", "buildDiscarder", "disableConcurrentBuilds", "timestamps"]


def test_commit_pipeline_runs_one_mlci_command_per_stage(recorded):
    events, _ = recorded
    scripts = [e["args"][0] for e in calls(events[("example", "commit", 0)], "sh")]
    commands = [s for s in scripts if s.startswith(".venv/bin/mlci")]
    assert commands == [".venv/bin/mlci validate", ".venv/bin/mlci train", ".venv/bin/mlci evaluate",
                        ".venv/bin/mlci gate", ".venv/bin/mlci build", ".venv/bin/mlci push",
                        '.venv/bin/mlci deploy --env "$MLCI_DEPLOY_ENV"', '.venv/bin/mlci deploy --env "$MLCI_DEPLOY_ENV"']
    env = assigned(events[("example", "commit", 0)])
    assert "MLCI_PROJECT" not in env  # the project is the repository root here
    assert env["MLCI_INSTALL"] == "."


def test_production_is_gated_by_branch_and_approval(recorded):
    events, _ = recorded
    ev = events[("example", "commit", 0)]
    production = stage_events(ev, "Deploy production")
    assert [e["call"] for e in production if e["depth"] == production[0]["depth"]] == [
        "when", "environment", "input", "steps"]
    assert [e["call"] for e in production if "call" in e][:3] == ["when", "beforeInput", "branch"]
    assert calls(production, "branch")[0]["args"] == ["main"]
    assert calls(production, "message")[0]["args"] == ["Deploy to production?"]
    assert assigned(production) == {"MLCI_DEPLOY_ENV": "production"}
    staging = stage_events(ev, "Deploy staging")
    assert [e["call"] for e in staging if e["depth"] == staging[0]["depth"]] == ["environment", "steps"]


def test_post_collects_junit_reports_artifacts_html_and_cleans_up(recorded):
    events, _ = recorded
    ev = events[("example", "commit", 0)]
    assert calls(ev, "junit")[0]["args"] == [{"testResults": "reports/*.junit.xml", "allowEmptyResults": True}]
    assert calls(ev, "archiveArtifacts")[0]["args"][0]["artifacts"] == "reports/**"
    html = calls(ev, "publishHTML")[0]["args"][0]["target"]
    assert html["reportDir"] == "reports" and html["reportFiles"] == "validate.html, evaluate.html, gate.html"
    # A registry in the workspace survives the clean-up, so the next build's gate has its champion.
    assert calls(ev, "cleanWs")[0]["args"] == [
        {"notFailBuild": True, "patterns": [{"pattern": ".mlci/registry/**", "type": "EXCLUDE"}]}]
    shared = events[("shared-registry", "commit", 0)]
    assert calls(shared, "cleanWs")[0]["args"] == [{"deleteDirs": True, "notFailBuild": True}]
    assert not calls(events[("kubernetes-agent", "commit", 0)], "publishHTML")


def test_agents_options_and_credentials(recorded):
    events, _ = recorded
    assert calls(events[("example", "commit", 0)], "label")[0]["args"] == ["linux"]
    assert {"property": "any", "depth": 1} in events[("agent-any", "commit", 0)]
    docker = events[("docker-agent", "commit", 0)]
    assert calls(docker, "image")[0]["args"] == ["registry.example.com/ml/py:3.11"]
    assert calls(docker, "label")[0]["args"] == ["docker"]
    kube = events[("kubernetes-agent", "commit", 0)]
    assert calls(kube, "yamlFile")[0]["args"] == ["ci/pod.yaml"]
    assert calls(kube, "timeout")[0]["args"] == [{"time": 5, "unit": "MINUTES"}]
    assert calls(kube, "logRotator")[0]["args"] == [{"numToKeepStr": "3"}]
    creds = events[("credentials", "commit", 0)]
    binding = calls(creds, "usernamePassword")[0]["args"][0]
    # The variables `mlci push` reads its credentials from (mlci.ops.image.registry_auth).
    assert binding == {"credentialsId": "registry-push", "usernameVariable": "MLCI_REGISTRY_USER",
                       "passwordVariable": "MLCI_REGISTRY_PASSWORD"}
    push = [e["args"][0] for e in calls(creds, "sh") if "mlci push" in e["args"][0]][0]
    assert push.strip().startswith("set +x")
    canary = stage_events(creds, "Deploy canary")
    assert [e["call"] for e in canary if "call" in e][:3] == ["when", "beforeInput", "branch"]
    assert calls(canary, "branch")[0]["args"] == ["release/1.x"]
    assert calls(canary, "message")[0]["args"] == ["Deploy to canary?"]
    no_image = [e["args"][0] for e in calls(events[("agent-any", "commit", 0)], "stage")]
    assert "Build image" not in no_image and not any(s.startswith("Deploy") for s in no_image)


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


@pytest.mark.parametrize("index", range(len(ADVERSARIAL)))
def test_adversarial_values_round_trip_literally(recorded, index):
    events, _ = recorded
    value = ADVERSARIAL[index]
    reports = value.replace("\n", "_") if "/" not in value else "r"
    for kind, status in (("commit", 0), ("nightly", 1)):
        ev = events[(f"adversarial-{index}", kind, status)]
        assert assigned(ev)["MLCI_INSTALL"] == value
        assert calls(ev, "junit")[0]["args"][0]["testResults"] == f"{reports}/*.junit.xml"
        for step in calls(ev, "sh"):  # the value reaches the shell only as $MLCI_INSTALL
            script = step["args"][0] if isinstance(step["args"][0], str) else step["args"][0]["script"]
            assert value not in script
    nightly = events[(f"adversarial-{index}", "nightly", 0)]
    assert calls(nightly, "cron")[0]["args"] == [value]


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
])
def test_bad_identifiers_are_refused_and_nothing_is_written(run_cli, tmp_path, section, key, value, message):
    config = base_config()
    target = config.setdefault(section, {})
    target[key] = {**target.get(key, {}), **value} if isinstance(value, dict) else value
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
    assert out.splitlines() == [f"wrote {project / 'Jenkinsfile'}", f"wrote {project / 'pipelines/nightly.Jenkinsfile'}"]
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
    unescaped = [e for e in expressions if not re.search(r"\|\s*groovy(_int)?\([^)]*\)\s*$", e)
                 and e.strip() != "version"]
    assert unescaped == []


# ---- docker/jenkins: the controller users start ---------------------------------------------------------


def test_controller_has_every_plugin_the_generated_pipelines_use(tmp_path):
    plugins = {line.split(":")[0].strip() for line in (REPO / "docker/jenkins/plugins.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    steps_to_plugins = {"timestamps()": "timestamper", "cleanWs(": "ws-cleanup", "publishHTML(": "htmlpublisher",
                        "withCredentials(": "credentials-binding", "junit ": "junit", "pipeline {": "workflow-aggregator",
                        "docker {": "docker-workflow", "kubernetes {": "kubernetes", "checkout scm": "git"}
    generated = "".join(text for name, config in variants().items() if not name.startswith("adversarial")
                        for text in render_pipelines(load_project(write_project(tmp_path / name, config))).values())
    for step, plugin in steps_to_plugins.items():
        assert step in generated, step
        assert plugin in plugins, plugin
    assert {"configuration-as-code", "job-dsl"} <= plugins
