"""`mlci jenkins sync|build|status|lint` end to end: the real CLI, the real python-jenkins client, the
Jenkins REST API emulator. A canary API token must never appear in any output, file or URL.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import yaml

from mlci.ops.jenkins import jobxml
from tests.jenkins_emulator import JenkinsEmulator, pipeline_config

REPO = Path(__file__).resolve().parent.parent
CANARY = "canary-" + secrets.token_hex(12)
SCM = "https://git.example.com/ml/credit-risk.git"


@pytest.fixture
def project(tmp_path) -> Path:
    config = yaml.safe_load((REPO / "examples" / "credit-risk" / "mlci.yaml").read_text())
    config["jenkins"] = {**config["jenkins"], "scm_url": SCM, "request_timeout": 2}
    # the commit and nightly jobs must share the registry: a directory outside both workspaces
    config["registry"] = {"backend": "local", "path": str(tmp_path / "shared" / "registry")}
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


@pytest.fixture
def emu(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with JenkinsEmulator(user="mlci", token=CANARY) as emulator:
        yield emulator
        for request in emulator.requests:
            assert CANARY not in request.path + request.query
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


@pytest.fixture
def mlci(run_cli, emu, project):
    """Run `mlci -C project ARGS` against the emulator; asserts the canary is in no output."""

    def invoke(*args, env=None):
        environment = {"JENKINS_URL": emu.url, "JENKINS_USER": "mlci", "JENKINS_API_TOKEN": CANARY, **(env or {})}
        code, out, err = run_cli("-C", project, *args, env=environment)
        assert CANARY not in out and CANARY not in err
        assert "Traceback" not in err
        return code, out, err

    return invoke


def edit_config(project: Path, **jenkins) -> dict:
    config = yaml.safe_load((project / "mlci.yaml").read_text())
    config["jenkins"].update(jenkins)
    (project / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def jenkinsfiles(mlci) -> dict:
    """The generated pipelines, as the repository Jenkins checks out holds them."""
    files = {}
    for kind, path in (("commit", "Jenkinsfile"), ("nightly", "pipelines/nightly.Jenkinsfile")):
        code, out, err = mlci("jenkinsfile", "--pipeline", kind, "-o", "-")
        assert code == 0, err
        files[path] = out
    return files


# ---- sync ---------------------------------------------------------------------------------------------


def test_sync_creates_then_leaves_unchanged_jobs_alone(mlci, emu):
    code, out, err = mlci("jenkins", "sync")
    assert code == 0, err
    assert set(emu.jobs) == {"credit-risk", "credit-risk-nightly"}
    assert emu.config_writes == {"credit-risk": 1, "credit-risk-nightly": 1}
    code, out, _ = mlci("--json", "jenkins", "sync")
    assert code == 0
    assert [j["action"] for j in json.loads(out)["jobs"]] == ["unchanged", "unchanged"]
    assert emu.config_writes == {"credit-risk": 1, "credit-risk-nightly": 1}


def test_the_commit_job_is_a_multibranch_project_by_default(mlci, emu):
    """when { branch } reads BRANCH_NAME, which only multibranch branch jobs set (pipeline-model-definition
    BranchConditionalScript.groovy): the commit pipeline is a WorkflowMultiBranchProject with a Git branch
    source and the Jenkinsfile path in its WorkflowBranchProjectFactory (workflow-multibranch)."""
    assert mlci("jenkins", "sync")[0] == 0
    import xml.etree.ElementTree as ET

    commit = ET.fromstring(emu.jobs["credit-risk"])  # as Jenkins serves it back
    assert commit.tag == "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
    source = commit.find("sources/data/jenkins.branch.BranchSource/source")
    assert source.get("class") == "jenkins.plugins.git.GitSCMSource"
    assert source.findtext("remote") == SCM and source.findtext("id") == "mlci-credit-risk-git"
    assert source.find("traits/jenkins.plugins.git.traits.BranchDiscoveryTrait") is not None
    assert commit.findtext("factory/scriptPath") == "Jenkinsfile"
    assert commit.find("orphanedItemStrategy").get("class").endswith("DefaultOrphanedItemStrategy")
    assert commit.findtext("triggers/com.cloudbees.hudson.plugins.folder.computed.PeriodicFolderTrigger/interval")
    assert "[managed by mlci: project credit-risk]" in commit.findtext("description")
    nightly = ET.fromstring(emu.jobs["credit-risk-nightly"])
    definition = nightly.find("definition")
    assert definition.get("class") == "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition"
    assert definition.findtext("scriptPath") == "pipelines/nightly.Jenkinsfile"
    assert nightly.findtext(".//hudson.triggers.TimerTrigger/spec") == "H 2 * * *"
    assert jobxml.REQUEST_ID_PARAMETER in [e.text for e in nightly.iter("name")]
    assert "sandbox" not in emu.posted_configs["credit-risk-nightly"].replace("sandboxed", "")  # never off


def test_a_single_branch_commit_job_has_an_scm_trigger(mlci, emu, project):
    """git-plugin GitStatus.java: /git/notifyCommit schedules only jobs with an SCMTrigger, so the
    single-branch commit job carries one (spec from jenkins.poll; '' means webhooks only)."""
    edit_config(project, job_type="pipeline", poll="")
    assert mlci("jenkins", "sync")[0] == 0
    import xml.etree.ElementTree as ET

    commit = ET.fromstring(emu.jobs["credit-risk"])
    assert commit.find("definition").findtext("scm/branches/hudson.plugins.git.BranchSpec/name") == "*/main"
    triggers = commit.find("properties/org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty/"
                           "triggers")
    assert [t.tag for t in triggers] == ["hudson.triggers.SCMTrigger"]
    assert (triggers.findtext("hudson.triggers.SCMTrigger/spec") or "") == ""
    edit_config(project, poll="H/15 * * * *")
    code, out, _ = mlci("--json", "jenkins", "sync")
    assert [j["action"] for j in json.loads(out)["jobs"]] == ["update", "unchanged"]
    assert "<spec>H/15 * * * *</spec>" in emu.jobs["credit-risk"]


@pytest.mark.parametrize("job_type", ["multibranch", "pipeline"])
def test_a_second_sync_after_builds_is_unchanged(mlci, emu, project, job_type):
    """Declarative rewrites the job's properties when a build starts (pipeline-model-definition
    Utils.updateJobProperties): `string(defaultValue: '')` is stored without a default
    (StringParameterDefinition.setDefaultValue), options{} add BuildDiscarderProperty and
    DisableConcurrentBuildsJobProperty. The config mlci posts must still count as what Jenkins serves."""
    edit_config(project, job_type=job_type)
    emu.add_repository(SCM, {"main": jenkinsfiles(mlci)})
    assert mlci("jenkins", "sync")[0] == 0
    assert mlci("jenkins", "build", "credit-risk-nightly", "--poll", "0.01")[0] == 0
    assert mlci("jenkins", "build", "credit-risk", "--poll", "0.01")[0] == 0
    emu.start_queued()
    commit_job = "credit-risk/main" if job_type == "multibranch" else "credit-risk"
    assert len(emu.builds(commit_job)) == 1 and len(emu.builds("credit-risk-nightly")) == 1
    assert "jenkins.model.BuildDiscarderProperty" in emu.jobs["credit-risk-nightly"]  # declarative ran
    writes = dict(emu.config_writes)
    code, out, _ = mlci("--json", "jenkins", "sync")
    assert [j["action"] for j in json.loads(out)["jobs"]] == ["unchanged", "unchanged"]
    assert dict(emu.config_writes) == writes


def test_an_update_keeps_the_properties_declarative_added(mlci, emu, project):
    """Re-posting a config must not drop the build discarder and concurrency properties until the next
    build (Utils.updateJobProperties only restores them when a build runs)."""
    emu.add_repository(SCM, {"main": jenkinsfiles(mlci)})
    assert mlci("jenkins", "sync")[0] == 0
    assert mlci("jenkins", "build", "credit-risk-nightly", "--poll", "0.01")[0] == 0
    edit_config(project, branch="release")
    code, out, _ = mlci("--json", "jenkins", "sync")
    assert [j["action"] for j in json.loads(out)["jobs"]] == ["unchanged", "update"]
    served = emu.jobs["credit-risk-nightly"]
    assert "*/release" in served
    assert "jenkins.model.BuildDiscarderProperty" in served
    assert "DisableConcurrentBuildsJobProperty" in served


def test_sync_updates_a_changed_job_and_dry_run_shows_the_diff(mlci, emu, project):
    edit_config(project, job_type="pipeline")
    assert mlci("jenkins", "sync")[0] == 0
    edit_config(project, branch="release")
    code, out, err = mlci("jenkins", "sync", "--dry-run")
    assert code == 0
    assert "would update" in out
    assert "-          <name>*/main</name>" in err and "+          <name>*/release</name>" in err
    assert emu.config_writes == {"credit-risk": 1, "credit-risk-nightly": 1}
    assert mlci("jenkins", "sync")[0] == 0
    assert emu.config_writes == {"credit-risk": 2, "credit-risk-nightly": 2}
    assert "*/release" in emu.jobs["credit-risk"]


def test_sync_accepts_what_jenkins_adds_to_a_config(mlci, emu):
    """A running declarative pipeline adds job properties; that is not a change worth rewriting."""
    assert mlci("jenkins", "sync")[0] == 0
    stored = emu.jobs["credit-risk-nightly"].replace(
        "<properties>", "<properties><jenkins.model.BuildDiscarderProperty><strategy><numToKeep>30</numToKeep>"
                        "</strategy></jenkins.model.BuildDiscarderProperty>")
    import jenkins

    jenkins.Jenkins(emu.url, "mlci", CANARY, timeout=5).reconfig_job("credit-risk-nightly", stored)
    writes = emu.config_writes["credit-risk-nightly"]
    code, out, _ = mlci("--json", "jenkins", "sync")
    assert [j["action"] for j in json.loads(out)["jobs"]] == ["unchanged", "unchanged"]
    assert emu.config_writes["credit-risk-nightly"] == writes


@pytest.mark.parametrize("registry, jenkins_registry, kubernetes, key", [
    ({}, None, None, "registry.path"),
    ({"path": "state/registry"}, None, None, "registry.path"),
    ({"path": "state/registry"}, None, "pod.yaml", "registry.path"),
    ({"path": "/srv/mlci/registry"}, {"backend": "local", "path": "state/registry"}, None, "jenkins.registry.path"),
    ({"backend": "mlflow"}, {"path": ".mlci/registry"}, "pod.yaml", "jenkins.registry.path"),
])
def test_sync_refuses_a_registry_inside_the_workspace(mlci, emu, project, registry, jenkins_registry, kubernetes,
                                                      key):
    """Each job has its own workspace (Jenkins.java, Slave.getWorkspaceFor) and pod agents lose theirs:
    a relative registry path would split the lifecycle between the commit and the nightly job. The rule
    applies to the registry the jobs use: jenkins.registry when set, else registry."""
    config = yaml.safe_load((project / "mlci.yaml").read_text())
    config["registry"] = registry
    config["jenkins"].pop("registry", None)
    if jenkins_registry is not None:
        config["jenkins"]["registry"] = jenkins_registry
    if kubernetes:
        config["jenkins"]["agent"] = {"kubernetes_yaml": kubernetes}
    (project / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    code, out, err = mlci("jenkins", "sync")
    assert code == 2
    assert f"{key} " in err and "own workspace" in err
    assert key == "registry.path" or "jenkins.registry.path" in err
    assert "registry.backend: mlflow" in err and "absolute registry.path" in err and "jenkins.registry" in err
    assert ("Kubernetes" in err) == bool(kubernetes)
    assert emu.requests == []
    code, out, err = mlci("config", "check")
    assert code == 0 and "warning:" in err and key in err


def test_config_check_is_quiet_about_a_shared_registry(mlci, project):
    code, _, err = mlci("config", "check")
    assert code == 0 and "warning" not in err


def test_the_bundled_example_syncs_as_it_is(mlci, emu, project):
    """The example keeps its laptop registry (.mlci/registry) and gives the Jenkins jobs an MLflow one
    (jenkins.registry, tracking server from the controller's MLFLOW_TRACKING_URI): sync accepts it and
    `mlci config check` has nothing to warn about."""
    example = yaml.safe_load((REPO / "examples" / "credit-risk" / "mlci.yaml").read_text())
    assert example["registry"] == {"path": ".mlci/registry"}
    assert example["jenkins"]["registry"]["backend"] == "mlflow"
    example["jenkins"] = {**example["jenkins"], "scm_url": SCM, "request_timeout": 2}
    (project / "mlci.yaml").write_text(yaml.safe_dump(example, sort_keys=False))
    code, out, err = mlci("jenkins", "sync")
    assert code == 0, err
    assert {"credit-risk", "credit-risk-nightly"} <= set(emu.config_writes)
    code, _, err = mlci("config", "check")
    assert code == 0 and "warning" not in err


def test_prune_deletes_only_jobs_this_project_manages(mlci, emu):
    managed = jobxml.pipeline_job_xml(project="credit-risk", summary="old", scm_url=SCM, branch="main",
                                      script_path="Jenkinsfile")
    other = jobxml.pipeline_job_xml(project="another-project", summary="x", scm_url=SCM, branch="main",
                                    script_path="Jenkinsfile")
    emu.add_job("credit-risk-old", managed)
    emu.add_job("another-project", other)
    emu.add_job("hand-made", pipeline_config())
    code, out, _ = mlci("jenkins", "sync", "--prune", "--dry-run")
    assert code == 0 and "would delete" in out
    assert "credit-risk-old" in emu.jobs
    code, out, err = mlci("jenkins", "sync", "--prune")
    assert code == 0, err
    assert set(emu.jobs) == {"credit-risk", "credit-risk-nightly", "another-project", "hand-made"}


def test_sync_into_a_folder(mlci, emu, project):
    config = yaml.safe_load((project / "mlci.yaml").read_text())
    config["jenkins"]["folder"] = "ml/credit"
    (project / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    code, out, err = mlci("jenkins", "sync")
    assert code == 0, err
    assert {"ml", "ml/credit", "ml/credit/credit-risk", "ml/credit/credit-risk-nightly"} <= set(emu.jobs)
    assert mlci("--json", "jenkins", "sync")[0] == 0
    assert emu.config_writes["ml/credit/credit-risk"] == 1


@pytest.mark.parametrize("folder", ["a/../b", "a?b", "%2e%2e", "x y"])
def test_bad_folder_names_are_refused_before_any_request(mlci, emu, project, folder):
    config = yaml.safe_load((project / "mlci.yaml").read_text())
    config["jenkins"]["folder"] = folder
    (project / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    code, _, err = mlci("jenkins", "sync")
    assert code == 2 and "jenkins.folder" in err
    assert emu.requests == []


# ---- build ----------------------------------------------------------------------------------------------


@pytest.fixture
def job(emu):
    emu.add_job("credit-risk", params={jobxml.REQUEST_ID_PARAMETER: "", "MODEL": "default"})
    return "credit-risk"


@pytest.mark.parametrize("result, code", [("SUCCESS", 0), ("UNSTABLE", 1), ("FAILURE", 1), ("ABORTED", 130)])
def test_build_follow_streams_the_console_and_exits_by_result(mlci, emu, job, result, code):
    lines = [f"[Pipeline] stage {i}" for i in range(8)]
    emu.script_job(job, result=result, console=lines, queue_polls=3, build_polls=4)
    exit_code, out, err = mlci("jenkins", "build", job, "-p", "MODEL=m1", "--follow", "--poll", "0.01")
    assert exit_code == code, err
    build = emu.build_info(job)
    assert out.startswith(build["full_console"])  # every byte once, in order
    assert out.count("[Pipeline] stage 3") == 1
    assert f"credit-risk #1: {result}" in out
    assert build["params"]["MODEL"] == "m1"
    assert len(build["params"][jobxml.REQUEST_ID_PARAMETER]) == 32
    assert "waiting: Waiting for next available executor" in err


def test_each_trigger_has_its_own_request_id_so_jenkins_does_not_merge_them(mlci, emu, job):
    emu.script_job(job, queue_polls=50)
    assert mlci("jenkins", "build", job, "--poll", "0.01", "--timeout", "0.05")[0] == 3
    assert mlci("jenkins", "build", job, "--poll", "0.01", "--timeout", "0.05")[0] == 3
    items = emu.queue
    assert len(items) == 2 and all(i["causes"] == 1 for i in items)
    assert items[0]["params"][jobxml.REQUEST_ID_PARAMETER] != items[1]["params"][jobxml.REQUEST_ID_PARAMETER]


def test_build_without_follow_reports_the_build_number(mlci, emu, job):
    emu.script_job(job, queue_polls=2, build_polls=5)
    code, out, _ = mlci("--json", "jenkins", "build", job, "--poll", "0.01")
    assert code == 0
    result = json.loads(out)
    assert result["number"] == 1 and result["result"] is None and result["queue_id"] == 1


def test_cancelled_in_the_queue(mlci, emu, job):
    emu.script_job(job, queue_polls=2, cancel_in_queue=True)
    code, out, _ = mlci("jenkins", "build", job, "--follow", "--poll", "0.01")
    assert code == 130
    assert "cancelled while queued" in out
    assert emu.builds(job) == []


def test_expired_queue_item_is_found_by_request_id(mlci, emu, job):
    emu.script_job(job, queue_polls=5, queue_expires_after=2, build_polls=1, console=["done"])
    code, out, err = mlci("jenkins", "build", job, "--follow", "--poll", "0.01")
    assert code == 0, err
    assert "credit-risk #1: SUCCESS" in out


def test_a_lost_trigger_response_is_not_posted_again(mlci, emu, job):
    emu.script_job(job, queue_polls=1, build_polls=1)
    emu.fault(r"/buildWithParameters", drop=True, process=True)
    code, out, err = mlci("jenkins", "build", job, "--follow", "--poll", "0.01")
    assert code == 0, err
    assert len(emu.requests_to(r"/buildWithParameters")) == 1
    assert len(emu.builds(job)) == 1
    assert "response was lost" in err


@pytest.mark.parametrize("fault, message", [
    ({"status": 503}, "HTTP 503"),
    ({"status": 400}, "HTTP 400"),
    ({"status": 500}, "HTTP 500"),
    ({"status": 404}, "404"),
    ({"silent": True}, "did not respond within 2s"),
])
def test_faults_on_trigger_are_exit_3(mlci, emu, job, fault, message):
    emu.fault(r"/buildWithParameters", **fault)
    code, _, err = mlci("jenkins", "build", job, "--follow", "--poll", "0.01")
    assert code == 3
    assert message in err
    assert emu.builds(job) == []


def test_fault_while_following_the_console_is_exit_3(mlci, emu, job):
    emu.script_job(job, queue_polls=0, build_polls=3, console=["a", "b"])
    emu.fault(r"/logText/progressiveText", 502, times=None)
    code, _, err = mlci("jenkins", "build", job, "--follow", "--poll", "0.01")
    assert code == 3 and "HTTP 502" in err


def test_stale_crumb_is_refreshed_during_a_build(mlci, emu, job):
    emu.script_job(job, queue_polls=0, build_polls=0)
    emu.fault(r"/buildWithParameters", 403, body="No valid crumb was included in the request")
    code, out, err = mlci("jenkins", "build", job, "--follow", "--poll", "0.01")
    assert code == 0, err
    assert len(emu.requests_to(r"/crumbIssuer/")) == 2


def test_bad_credentials(mlci, emu, job):
    code, _, err = mlci("jenkins", "build", job, env={"JENKINS_API_TOKEN": "wrong"})
    assert code == 3 and "authentication failed" in err


def test_unreachable_jenkins(mlci, emu, job):
    emu.stop()
    code, _, err = mlci("jenkins", "status", job)
    assert code == 3 and "cannot connect to Jenkins at http://127.0.0.1:" in err


def test_parameters_the_job_does_not_declare_are_refused(mlci, emu, job):
    code, _, err = mlci("jenkins", "build", job, "-p", "NOPE=1")
    assert code == 2 and "has no parameter NOPE" in err
    assert emu.requests_to(r"/buildWithParameters") == []
    emu.add_job("plain")
    code, _, err = mlci("jenkins", "build", "plain")
    assert code == 2 and "MLCI_REQUEST_ID" in err and "mlci jenkins sync" in err


@pytest.mark.parametrize("name", ["folder/../other", "a?b", "a#b", "%2e%2e"])
def test_job_name_traversal_is_refused_before_any_request(mlci, emu, name):
    code, _, err = mlci("jenkins", "build", name)
    assert code == 2 and "JOB" in err
    assert emu.requests == []


def test_no_server_configured(run_cli, project, monkeypatch):
    monkeypatch.delenv("JENKINS_URL", raising=False)
    code, _, err = run_cli("-C", project, "jenkins", "status")
    assert code == 2 and "JENKINS_URL" in err


def test_the_token_is_never_a_command_line_option(run_cli):
    code, out, _ = run_cli("jenkins", "build", "--help")
    assert "token" not in out.lower().replace("api_token", "")
    assert run_cli("jenkins", "build", "x", "--token", "t")[0] == 2


# ---- status and lint -------------------------------------------------------------------------------------


def test_status_of_the_project_jobs(mlci, emu):
    assert mlci("jenkins", "sync")[0] == 0
    code, out, _ = mlci("--json", "jenkins", "status")
    assert json.loads(out)["builds"][0] == {"job": "credit-risk", "number": None, "result": "no branch indexed yet"}
    emu.add_repository(SCM, {"main": jenkinsfiles(mlci)})
    emu.script_job("credit-risk/main", result="FAILURE", queue_polls=0, build_polls=0)
    assert mlci("jenkins", "build", "credit-risk")[0] == 0  # a scan: builds the discovered branch
    code, out, _ = mlci("--json", "jenkins", "status")
    assert code == 0
    builds = json.loads(out)["builds"]
    assert builds[0]["job"] == "credit-risk/main" and builds[0]["result"] == "FAILURE" and builds[0]["number"] == 1
    assert builds[1] == {"job": "credit-risk-nightly", "number": None, "result": "never built"}


def test_build_of_a_multibranch_project_is_a_scan(mlci, emu):
    """cloudbees-folder ComputedFolder.doBuild: `build` on a multibranch project schedules branch indexing
    (branch-api), which creates a job per branch holding the Jenkinsfile and builds new or changed ones."""
    assert mlci("jenkins", "sync")[0] == 0
    files = jenkinsfiles(mlci)
    emu.add_repository(SCM, {"main": files, "feature/x": files, "docs": {"README.md": "no pipeline"}})
    code, out, err = mlci("--json", "jenkins", "build", "credit-risk")
    assert code == 0, err
    assert json.loads(out)["scan"] is True and emu.scans("credit-risk") == 1
    assert sorted(j for j in emu.jobs if j.startswith("credit-risk/")) == ["credit-risk/feature%2Fx",
                                                                            "credit-risk/main"]
    assert [i["job"] for i in emu.queue] == ["credit-risk/feature%2Fx", "credit-risk/main"]
    code, _, err = mlci("jenkins", "build", "credit-risk", "-p", "X=1")
    assert code == 2 and "credit-risk/main" in err
    emu.start_queued()
    code, out, err = mlci("--json", "jenkins", "status")  # branch names with '/' arrive encoded by Jenkins
    assert code == 0, err
    assert [b["job"] for b in json.loads(out)["builds"]][:2] == ["credit-risk/feature%2Fx", "credit-risk/main"]


def test_lint_with_the_server_validator(mlci, emu, project, tmp_path):
    assert mlci("jenkinsfile")[0] == 0
    code, out, _ = mlci("jenkins", "lint", project / "Jenkinsfile")
    assert code == 0 and "pipeline-model-converter" in out
    assert emu.requests_to(r"/pipeline-model-converter/")
    bad = tmp_path / "Bad.Jenkinsfile"
    bad.write_text("pipeline {\n  stages { stage('a') { steps { echo 'x' } } }\n}\n")
    code, out, _ = mlci("jenkins", "lint", bad)
    assert code == 1 and "agent" in out
    assert (project / "reports" / "lint.junit.xml").exists()


def test_lint_offline_with_groovy(mlci, emu, project, tmp_path, groovy):
    assert mlci("jenkinsfile")[0] == 0
    before = len(emu.requests)
    code, out, err = mlci("jenkins", "lint", "--offline", project / "pipelines" / "nightly.Jenkinsfile")
    assert code == 0, err
    assert "groovyc" in out
    broken = tmp_path / "Broken"
    broken.write_text("pipeline { stage('a) }\n")
    code, out, _ = mlci("jenkins", "lint", "--offline", broken)
    assert code == 1 and "line 1" in out
    assert len(emu.requests) == before


def notify_commit(emu, url: str = SCM, **params) -> str:
    import requests

    response = requests.get(emu.url + "git/notifyCommit", params={"url": url, **params}, timeout=5)
    assert response.status_code == 200
    return response.text


def test_a_webhook_builds_the_single_branch_commit_job(mlci, emu, project):
    """git-plugin GitStatus.doNotifyCommit polls (or with sha1 builds) only jobs with an SCMTrigger whose
    remote loosely matches; the nightly job has none and is left alone."""
    edit_config(project, job_type="pipeline")
    emu.add_repository(SCM, {"main": jenkinsfiles(mlci)})
    assert mlci("jenkins", "sync")[0] == 0
    answer = notify_commit(emu, "ssh://git@git.example.com/ml/credit-risk", branches="main")
    assert answer == "Scheduled polling of credit-risk\n"
    assert [i["job"] for i in emu.queue] == ["credit-risk"]
    emu.start_queued()
    assert notify_commit(emu, branches="main") == "Scheduled polling of credit-risk\n"  # nothing new: no build
    assert len(emu.queue) == 1
    assert notify_commit(emu, "https://git.example.com/other.git").startswith("No git jobs using repository")


def test_a_webhook_reindexes_the_multibranch_project(mlci, emu):
    """GitSCMSource's notifyCommit listener fires an SCM event for sources with a matching remote; branch-api
    re-indexes and builds the changed branch."""
    emu.add_repository(SCM, {"main": jenkinsfiles(mlci)})
    assert mlci("jenkins", "sync")[0] == 0
    notify_commit(emu, branches="main")
    assert emu.scans("credit-risk") == 1
    assert [i["job"] for i in emu.queue] == ["credit-risk/main"]
