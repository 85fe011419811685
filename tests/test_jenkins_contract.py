"""The Jenkins contract mlci relies on, run against the emulator and, when one is named, a real controller.

Set ``MLCI_TEST_JENKINS_URL``, ``MLCI_TEST_JENKINS_USER`` and ``MLCI_TEST_JENKINS_TOKEN`` (an API token) to
point these tests at a controller, e.g. the one ``docker/jenkins`` builds; without them the ``real`` cases
are skipped with that reason (the one skip the suite allows: no Jenkins controller can run in its own
environment, so CI cannot provide one). The ``emulator`` cases always run, so the emulator is held to the
same contract. Jobs are created under unique names and deleted afterwards.
"""

from __future__ import annotations

import os
import re
import secrets
import xml.etree.ElementTree as ET

import pytest
import requests

from mlci.adapters.jenkins_client import JenkinsClient
from mlci.ops.jenkins import jobxml
from mlci.ops.jenkins import server as ops
from tests.jenkins_emulator import JenkinsEmulator

ENV_URL, ENV_USER, ENV_TOKEN = "MLCI_TEST_JENKINS_URL", "MLCI_TEST_JENKINS_USER", "MLCI_TEST_JENKINS_TOKEN"

DECLARATIVE = """\
pipeline {
  agent any
  options { buildDiscarder(logRotator(numToKeepStr: '5')) }
  parameters {
    string(name: 'MLCI_REQUEST_ID', defaultValue: '', description: 'request id of `mlci jenkins build`', trim: true)
  }
  stages { stage('contract') { steps { echo "request ${params.MLCI_REQUEST_ID}" } } }
}
"""


class Target:
    def __init__(self, url: str, user: str, token: str, emulator: JenkinsEmulator | None = None):
        self.url, self.user, self.token, self.emulator = url, user, token, emulator
        self.client = JenkinsClient(url, user=user, token=token, timeout=30)
        self.created: list[str] = []

    def name(self) -> str:
        name = f"mlci-contract-{secrets.token_hex(4)}"
        self.created.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.created:
            if self.client.job_config(name) is not None:
                self.client.delete_job(name)


@pytest.fixture(params=["emulator", "real"])
def target(request):
    if request.param == "emulator":
        with JenkinsEmulator(user="mlci", token="contract-token") as emulator:
            yield Target(emulator.url, "mlci", "contract-token", emulator)
        return
    url, user, token = (os.environ.get(k) for k in (ENV_URL, ENV_USER, ENV_TOKEN))
    if not (url and user and token):
        pytest.skip(f"no real Jenkins named: set {ENV_URL}, {ENV_USER} and {ENV_TOKEN} (an API token) to run "
                    "the contract against one, e.g. the docker/jenkins controller")
    real = Target(url, user, token)
    yield real
    real.cleanup()


def inline_job(script: str, *, quiet_period: int | None = None, parameter: bool = True) -> str:
    """A sandboxed inline Pipeline job carrying mlci's request-id parameter as mlci posts it."""
    root = ET.fromstring(jobxml.pipeline_job_xml(project="contract", summary="contract test", scm_url="unused",
                                                 branch="main", script_path="Jenkinsfile"))
    if not parameter:
        properties = root.find("properties")
        for prop in list(properties):
            properties.remove(prop)
    root.remove(root.find("definition"))
    definition = ET.SubElement(root, "definition", {"class": "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition",
                                                    "plugin": "workflow-cps"})
    ET.SubElement(definition, "script").text = script
    ET.SubElement(definition, "sandbox").text = "true"
    if quiet_period is not None:
        ET.SubElement(root, "quietPeriod").text = str(quiet_period)
    return ET.tostring(root, "unicode")


def test_config_round_trip_keeps_what_mlci_manages(target):
    """AbstractItem.updateByXml: the config is re-serialized; unknown elements are dropped, the parts
    mlci manages come back."""
    name = target.name()
    config = inline_job(DECLARATIVE)
    root = ET.fromstring(config)
    ET.SubElement(root, "mlciNotAField").text = "dropped"
    target.client.create_job(name, ET.tostring(root, "unicode"))
    served = target.client.job_config(name)
    assert "mlciNotAField" not in served
    assert jobxml.covers(config, served)


def test_a_build_leaves_the_config_mlci_posted_unchanged_in_what_it_manages(target):
    """Declarative's first build rewrites the parameter property (Utils.updateJobProperties); the
    request-id parameter as mlci posts it is what that rewrite writes, so sync stays 'unchanged'."""
    name = target.name()
    config = inline_job(DECLARATIVE)
    target.client.create_job(name, config)
    result = ops.trigger_build(target.client, name, follow=True, timeout=300, poll_interval=0.5)
    assert result.result == "SUCCESS"
    served = ET.fromstring(target.client.job_config(name))
    parameter = next(p for p in served.iter("hudson.model.StringParameterDefinition")
                     if p.findtext("name") == jobxml.REQUEST_ID_PARAMETER)
    assert parameter.find("defaultValue") is None
    assert served.find(".//jenkins.model.BuildDiscarderProperty") is not None
    assert jobxml.covers(config, ET.tostring(served, "unicode"))


# The trigger endpoints: jenkinsci/jenkins ParametersDefinitionProperty.buildWithParameters and
# ParameterizedJobMixIn.doBuild/doBuildWithParameters, read at ff9430ee1dc6 (2.578+; the same in 2.568.2).
PLAIN = "pipeline { agent any\n stages { stage('a') { steps { echo 'a' } } } }"


def _post_twice(target, path: str, data: dict | None = None) -> list[requests.Response]:
    return [requests.post(f"{target.url}{path}", data=data, auth=(target.user, target.token), allow_redirects=False,
                          timeout=30) for _ in range(2)]


def _queue_id(response: requests.Response) -> int:
    match = re.search(r"/queue/item/(\d+)/$", response.headers.get("Location", ""))
    assert match, response.headers
    return int(match.group(1))


def test_an_identical_queued_request_is_merged_with_303(target):
    """buildWithParameters: 201 for a new queue item, 303 See Other naming the waiting item a request with the same
    parameter values was folded into; mlci's client reads the same queue id from both."""
    name = target.name()
    target.client.create_job(name, inline_job(DECLARATIVE, quiet_period=120))
    created, merged = _post_twice(target, f"job/{name}/buildWithParameters", {jobxml.REQUEST_ID_PARAMETER: "same"})
    first = _queue_id(created)
    try:
        assert (created.status_code, merged.status_code) == (201, 303)
        assert _queue_id(merged) == first
        assert target.client.trigger(name, {jobxml.REQUEST_ID_PARAMETER: "same"}) == first
    finally:
        target.client._call("cancelling", target.client._request, "POST", f"queue/cancelItem?id={first}")


def test_a_job_without_parameters_answers_201_for_a_merged_build(target):
    """doBuild answers 201 with the waiting item's Location also when the request was merged into it
    (``// TODO JENKINS-66105 use SC_SEE_OTHER if !ScheduleResult.created``): no 303 on ``build``."""
    name = target.name()
    target.client.create_job(name, inline_job(PLAIN, quiet_period=120, parameter=False))
    created, merged = _post_twice(target, f"job/{name}/build")
    first = _queue_id(created)
    try:
        assert (created.status_code, merged.status_code) == (201, 201)
        assert _queue_id(merged) == first
    finally:
        target.client._call("cancelling", target.client._request, "POST", f"queue/cancelItem?id={first}")


def test_build_with_parameters_on_a_plain_job_is_400(target):
    """doBuildWithParameters on a job without parameters: 400 ``<full name> is not parameterized`` (since 2.524,
    commit 521ecfdbfc35; an IllegalStateException, a 500, before)."""
    name = target.name()
    target.client.create_job(name, inline_job(PLAIN, parameter=False))
    response = requests.post(f"{target.url}job/{name}/buildWithParameters", data={"X": "1"},
                             auth=(target.user, target.token), allow_redirects=False, timeout=30)
    assert response.status_code == 400
    assert f"{name} is not parameterized" in response.text


def test_api_token_requests_need_no_crumb_and_anonymous_ones_are_refused(target):
    """ApiCrumbExclusion.java: API-token requests are exempt from crumbs; anonymous requests get 403."""
    name = target.name()
    response = requests.post(f"{target.url}createItem", params={"name": name}, data=inline_job(DECLARATIVE),
                             headers={"Content-Type": "text/xml"}, auth=(target.user, target.token), timeout=30)
    assert response.status_code == 200
    assert requests.get(f"{target.url}job/{name}/api/json", timeout=30).status_code == 403


def test_names_ending_in_a_dot_are_refused(target):
    """Jenkins.checkGoodName (SECURITY-2424)."""
    response = requests.post(f"{target.url}createItem", params={"name": "mlci-contract."},
                             data=inline_job(DECLARATIVE), headers={"Content-Type": "text/xml"},
                             auth=(target.user, target.token), timeout=30)
    assert response.status_code == 400


def test_the_validator_rejects_an_unknown_option_with_its_message(target):
    """ModelValidatorImpl + Messages.properties InvalidSectionType."""
    errors = target.client.lint("pipeline {\n agent any\n options { timestamp() }\n"
                                " stages { stage('a') { steps { echo 'a' } } }\n}\n")
    assert any('Invalid option type "timestamp". Valid option types:' in e for e in errors), errors
    assert target.client.lint(DECLARATIVE) == []
