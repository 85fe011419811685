"""Tests of the Jenkins emulator, driven through the real python-jenkins client.

They also pin down python-jenkins 1.8.3 behaviour that mlci's adapter has to cope with
(which exception class each failure arrives as, stale crumbs, unauthenticated get_version).
"""

from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET

import jenkins
import pytest
import requests

from tests.jenkins_emulator import JENKINS_VERSION, NO_VALID_CRUMB, JenkinsEmulator, pipeline_config

TOKEN = "s3cr3t-api-token-0123456789"
PASSWORD = "s3cr3t-password-9876543210"

GOOD_JENKINSFILE = """\
pipeline {
  agent any
  environment { MODEL = 'iris' }
  stages {
    stage('Train') {
      steps {
        sh '''mlci train --model "$MODEL"'''
      }
    }
    stage('Gate') {
      steps { sh 'mlci gate' }
    }
  }
  post { always { echo 'done' } }
}
"""


@pytest.fixture
def emu():
    with JenkinsEmulator(user="mlci", token=TOKEN, password=PASSWORD) as e:
        yield e


@pytest.fixture
def server(emu):
    return jenkins.Jenkins(emu.url, username="mlci", password=TOKEN, timeout=5)


@pytest.fixture
def password_server(emu):
    """A client that logs in with the user's password: CSRF crumbs apply to it (CrumbFilter), unlike
    API-token requests (ApiCrumbExclusion.java)."""
    return jenkins.Jenkins(emu.url, username="mlci", password=PASSWORD, timeout=5)


def canonical(xml_text: str) -> str:
    return ET.canonicalize(xml_text, strip_text=True)


def wait_for_build(server, queue_id, max_polls=20):
    for _ in range(max_polls):
        item = server.get_queue_item(queue_id)
        if item.get("cancelled"):
            return item, None
        if item.get("executable"):
            return item, item["executable"]["number"]
    raise AssertionError("queue item never left the queue")


def wait_for_result(server, name, number, max_polls=20):
    seen_building = 0
    for _ in range(max_polls):
        info = server.get_build_info(name, number)
        if not info["building"]:
            return info, seen_building
        assert info["result"] is None
        seen_building += 1
    raise AssertionError("build never finished")


# ---- jobs and folders ------------------------------------------------------------------------

HAND_WRITTEN_CONFIG = """<?xml version='1.0' encoding='UTF-8'?>
<!-- rendered by mlci -->
<flow-definition plugin='workflow-job'>
  <description>train the model</description>
  <properties></properties>
  <definition class='org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition'>
    <script>pipeline { agent any; stages { stage('a') { steps { echo 'a' } } } }</script>
    <sandbox>true</sandbox>
  </definition>
</flow-definition>
"""


def test_job_lifecycle_with_folder(emu, server):
    server.create_folder("ml")
    config = HAND_WRITTEN_CONFIG
    server.create_job("ml/train", config)
    server.create_job("nightly", pipeline_config())

    assert server.job_exists("ml/train") is True
    assert server.job_exists("ml/missing") is None  # None, not False
    assert server.is_folder("ml")
    # Jenkins re-serialises the config: same document, different bytes.
    fetched = server.get_job_config("ml/train")
    assert fetched != config
    assert canonical(fetched) == canonical(config)
    assert emu.posted_configs["ml/train"] == config
    assert emu.config_writes["ml/train"] == 1

    names = {j["fullname"] for j in server.get_all_jobs()}
    assert names == {"ml", "ml/train", "nightly"}
    top = {j["fullname"] for j in server.get_jobs()}
    assert top == {"ml", "nightly"}

    new_config = pipeline_config({"MODEL": "iris", "MLCI_REQUEST_ID": ""})
    server.reconfig_job("ml/train", new_config)
    assert emu.config_writes["ml/train"] == 2
    assert canonical(emu.jobs["ml/train"]) == canonical(new_config)
    info = server.get_job_info("ml/train")
    assert [p["name"] for p in info["property"][0]["parameterDefinitions"]] == [
        "MODEL", "MLCI_REQUEST_ID"]
    assert info["description"] == "created by the Jenkins emulator"
    assert info["color"] == "notbuilt" and info["nextBuildNumber"] == 1

    # Reading never counts as a write: an unchanged job can be proven not re-posted.
    server.get_job_config("ml/train")
    assert emu.config_writes["ml/train"] == 2
    assert emu.config_writes["never-written"] == 0

    server.delete_job("ml")
    assert server.job_exists("ml/train") is None
    assert set(emu.jobs) == {"nightly"}


def test_create_existing_job_and_bad_input(emu, server):
    server.create_job("train", pipeline_config())
    with pytest.raises(jenkins.JenkinsException, match="already exists"):
        server.create_job("train", pipeline_config())  # python-jenkins checks first
    # The server-side answer to a racing create (what a TOCTOU loser sees):
    auth = ("mlci", TOKEN)
    with requests.Session() as s:
        crumb = s.get(emu.url + "crumbIssuer/api/json", auth=auth).json()
        headers = {crumb["crumbRequestField"]: crumb["crumb"], "Content-Type": "text/xml"}
        r = s.post(emu.url + "createItem?name=TRAIN", data=pipeline_config(), headers=headers,
                   auth=auth)
        assert r.status_code == 400 and "already exists" in r.headers["X-Error"]
        r = s.post(emu.url + "createItem?name=a%3Fb", data=pipeline_config(), headers=headers,
                   auth=auth)
        assert r.status_code == 400 and "unsafe character" in r.headers["X-Error"]
        # Jenkins.checkGoodName (SECURITY-2424): a trailing dot is refused
        r = s.post(emu.url + "createItem?name=model.", data=pipeline_config(), headers=headers,
                   auth=auth)
        assert r.status_code == 400 and "A name cannot end with \u2018.\u2019" in r.text
        r = s.post(emu.url + "job/train/config.xml", data="<flow-definition>", headers=headers,
                   auth=auth)
        assert r.status_code == 500
    # Names are case-insensitive in Jenkins; python-jenkins then refuses the answer.
    with pytest.raises(jenkins.JenkinsException, match="unexpected job name"):
        server.job_exists("TRAIN")
    with pytest.raises(jenkins.JenkinsException, match="folder for the job does not exist"):
        server.create_job("nofolder/x", pipeline_config())


# ---- builds ------------------------------------------------------------------------------------

def test_build_with_parameters_queue_to_result(emu, server):
    emu.add_job("train", params={"MODEL": "iris", "MLCI_REQUEST_ID": ""})
    emu.script_job("train", result="UNSTABLE", console=["fit", "score 0.91"],
                   queue_polls=2, build_polls=3)
    queue_id = server.build_job("train", {"MODEL": "wine", "MLCI_REQUEST_ID": "req-1",
                                          "UNDECLARED": "dropped"})
    assert server.get_queue_item(queue_id)["why"] == "Waiting for next available executor"
    item, number = wait_for_build(server, queue_id)
    assert number == 1 and item["why"] is None and item["cancelled"] is False
    info, seen_building = wait_for_result(server, "train", number)
    assert seen_building == 3  # build_polls=3 reads saw it running, the 4th saw the result
    assert info["result"] == "UNSTABLE" and info["duration"] > 0
    params = {p["name"]: p["value"] for a in info["actions"] if "parameters" in a
              for p in a["parameters"]}
    # Jenkins keeps only declared parameters.
    assert params == {"MODEL": "wine", "MLCI_REQUEST_ID": "req-1"}
    console = server.get_build_console_output("train", number)
    assert console == "Started by user mlci\nfit\nscore 0.91\nFinished: UNSTABLE\n"
    job = server.get_job_info("train")
    assert job["color"] == "yellow" and job["lastBuild"]["number"] == 1
    trigger = emu.requests_to(r"/job/train/buildWithParameters$", "POST")[0]
    assert trigger.params["MLCI_REQUEST_ID"] == ["req-1"]


def test_build_results_and_defaults(emu, server):
    emu.add_job("plain")
    emu.script_job("plain", result="FAILURE", queue_polls=0, build_polls=0, once=True)
    queue_id = server.build_job("plain")
    item = server.get_queue_item(queue_id)  # queue_polls=0: started at trigger time
    assert item["executable"]["number"] == 1
    assert server.get_build_info("plain", 1)["result"] == "FAILURE"
    # the `once` scenario is used up; the default scenario applies again
    queue_id = server.build_job("plain")
    _, number = wait_for_build(server, queue_id)
    assert wait_for_result(server, "plain", number)[0]["result"] == "SUCCESS"
    assert server.get_job_info("plain")["lastFailedBuild"]["number"] == 1


def queue_id(response) -> int:
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


# The trigger endpoints as jenkinsci/jenkins answers them, read at commit ff9430ee1dc6 (2.578+; unchanged in the
# 2.568.2 LTS): core/src/main/java/jenkins/model/ParameterizedJobMixIn.java (doBuild, doBuildWithParameters),
# core/src/main/java/hudson/model/ParametersDefinitionProperty.java (_doBuild, buildWithParameters),
# core/src/main/java/hudson/model/Queue.java (schedule2/scheduleInternal, Item.doIndex).


def test_identical_queued_parameters_are_merged(emu, server):
    """ParametersDefinitionProperty.buildWithParameters: 201 + Location for a new queue item; an identical request
    folded into the waiting item (Queue.scheduleInternal -> ScheduleResult.existing; ParametersAction.shouldSchedule
    compares the parameter values as a set) answers 303 See Other with that item's Location."""
    emu.add_job("train", params={"MODEL": "iris", "MLCI_REQUEST_ID": ""})
    emu.script_job("train", queue_polls=5)
    auth = ("mlci", TOKEN)
    url = emu.url + "job/train/buildWithParameters"
    created = requests.post(url, data={"MODEL": "wine"}, auth=auth, allow_redirects=False, timeout=5)
    merged = requests.post(url, data={"MODEL": "wine"}, auth=auth, allow_redirects=False, timeout=5)
    assert (created.status_code, merged.status_code) == (201, 303)
    first = queue_id(created)
    assert queue_id(merged) == first  # coalesced into the waiting item
    assert emu.queue_item(first)["causes"] == 2
    third = server.build_job("train", {"MODEL": "wine", "MLCI_REQUEST_ID": "r-3"})
    fourth = server.build_job("train", {"MODEL": "wine", "MLCI_REQUEST_ID": "r-4"})
    assert len({first, third, fourth}) == 3
    assert [i["params"] for i in server.get_queue_info()] == [
        "\nMODEL=wine\nMLCI_REQUEST_ID=", "\nMODEL=wine\nMLCI_REQUEST_ID=r-3",
        "\nMODEL=wine\nMLCI_REQUEST_ID=r-4"]
    # once an item has left the queue, an identical request makes a new item
    emu.start_queued("train")
    assert server.build_job("train", {"MODEL": "wine"}) not in (first, third, fourth)


def test_python_jenkins_follows_a_303_to_the_queue_items_page_and_finds_no_location(emu, server):
    """python-jenkins 1.8.3 (jenkins/__init__.py: Jenkins._request sends through a requests Session, which follows
    redirects) turns the 303 of a merged buildWithParameters into a GET of /queue/item/N/. Queue.Item.doIndex answers
    that with 200 and a line of text, so build_job finds no Location and raises EmptyResponseException: it cannot
    return the item the request was merged into. (mlci posts without following redirects.)"""
    emu.add_job("train", params={"MODEL": "iris"})
    emu.script_job("train", queue_polls=5)
    first = server.build_job("train", {"MODEL": "wine"})
    with pytest.raises(jenkins.EmptyResponseException, match="Header 'Location' not found"):
        server.build_job("train", {"MODEL": "wine"})
    followed = emu.requests_to(rf"^/queue/item/{first}/$")
    assert [(r.method, r.status) for r in followed] == [("GET", 200)]
    page = requests.get(f"{emu.url}queue/item/{first}/", auth=("mlci", TOKEN), timeout=5)
    assert page.text.startswith("Queue item exists.") and "Location" not in page.headers
    assert emu.queue_item(first)["causes"] == 2


def test_build_without_parameters_answers_201_even_when_merged(emu, server):
    """ParameterizedJobMixIn.doBuild schedules with Queue.schedule2 and answers 201 with the item's Location whether
    the item is new or the waiting one the request was merged into
    (``// TODO JENKINS-66105 use SC_SEE_OTHER if !ScheduleResult.created``); only buildWithParameters answers 303.
    python-jenkins' build_job reads the 201's Location, so it returns the merged item."""
    emu.add_job("plain")
    emu.script_job("plain", queue_polls=5)
    url = emu.url + "job/plain/build"
    auth = ("mlci", TOKEN)
    created = requests.post(url, auth=auth, allow_redirects=False, timeout=5)
    merged = requests.post(url, auth=auth, allow_redirects=False, timeout=5)
    assert (created.status_code, merged.status_code) == (201, 201)
    assert queue_id(merged) == queue_id(created)
    assert server.build_job("plain") == queue_id(created)
    assert emu.queue_item(queue_id(created))["causes"] == 3


def test_build_with_parameters_on_a_job_without_parameters_is_400(emu, server):
    """ParameterizedJobMixIn.doBuildWithParameters: ``HttpResponses.errorWithoutStack(SC_BAD_REQUEST, <full name> +
    " is not parameterized")`` since Jenkins 2.524 (commit 521ecfdbfc35, "Better error response from
    doBuildWithParameters"); before it, ``IllegalStateException("This build is not parameterized!")``, a 500.
    python-jenkins raises JenkinsException only for 401/403/500 and NotFoundException for 404: a 400 arrives as the
    raw requests.HTTPError."""
    emu.add_folder("ml")
    emu.add_job("ml/plain")
    response = requests.post(emu.url + "job/ml/job/plain/buildWithParameters", data={"A": "1"},
                             auth=("mlci", TOKEN), allow_redirects=False, timeout=5)
    assert response.status_code == 400 and "ml/plain is not parameterized" in response.text
    with pytest.raises(requests.HTTPError, match="400"):
        server.build_job("ml/plain", {"A": "1"})
    assert emu.queue == []


def test_build_on_a_parameterized_job_is_the_parameter_forms_submission(emu, server):
    """ParameterizedJobMixIn.doBuild hands a POST on a parameterized job to ParametersDefinitionProperty._doBuild,
    which reads the UI's ``json`` form field (stapler RequestImpl.getSubmittedForm: 400 "Nothing is submitted", or
    "This page expects a form submission" when other fields came), keeps only the submitted parameters, schedules
    with Queue.schedule (no item for a merged request: a 302 to the job) and answers 201 for a new item."""
    emu.add_job("param", params={"A": "1", "B": "2"})
    emu.script_job("param", queue_polls=5)
    url = emu.url + "job/param/build"
    auth = ("mlci", TOKEN)
    with pytest.raises(requests.HTTPError, match="400"):
        server.build_job("param")  # python-jenkins: no parameters, so /build
    with pytest.raises(requests.HTTPError, match="400"):
        server.build_job("param", {})  # an empty dict is falsy: also /build
    nothing = requests.post(url, auth=auth, allow_redirects=False, timeout=5)
    other = requests.post(url, data={"delay": "0sec"}, auth=auth, allow_redirects=False, timeout=5)
    assert (nothing.status_code, other.status_code) == (400, 400)
    assert "Nothing is submitted" in nothing.text and "This page expects a form submission" in other.text
    form = {"json": json.dumps({"parameter": [{"name": "B", "value": "x"}]})}
    created = requests.post(url, data=form, auth=auth, allow_redirects=False, timeout=5)
    merged = requests.post(url, data=form, auth=auth, allow_redirects=False, timeout=5)
    assert (created.status_code, merged.status_code) == (201, 302)
    assert merged.headers["Location"] == emu.url + "job/param/"
    assert emu.queue_item(queue_id(created))["params"] == {"B": "x"}
    unknown = {"json": json.dumps({"parameter": {"name": "C", "value": "x"}})}
    assert requests.post(url, data=unknown, auth=auth, timeout=5).status_code == 500


def test_the_order_of_checks_on_the_build_endpoints(emu, server):
    """doBuild checks isBuildable first (409), then shows a parameterized job's form to a GET, then
    BuildAuthorizationToken.checkPermission answers a GET 405 with ``Allow: POST``; doBuildWithParameters calls
    checkPermission first, then isBuildable."""
    emu.add_job("param", params={"A": "1"})
    emu.add_job("plain")
    auth = ("mlci", TOKEN)

    def get(path):
        return requests.get(emu.url + path, auth=auth, allow_redirects=False, timeout=5)

    assert get("job/param/build").status_code == 200  # the parameter form
    not_allowed = get("job/plain/build")
    assert not_allowed.status_code == 405 and not_allowed.headers["Allow"] == "POST"
    assert get("job/param/buildWithParameters").status_code == 405
    server.disable_job("plain")
    server.disable_job("param")
    assert get("job/plain/build").status_code == 409
    assert get("job/param/buildWithParameters").status_code == 405
    with pytest.raises(requests.HTTPError, match="409"):
        server.build_job("param", {"A": "2"})
    with pytest.raises(requests.HTTPError, match="409"):
        server.build_job("plain")
    with pytest.raises(jenkins.NotFoundException):
        server.build_job("missing")


def test_cancelled_expired_and_stopped(emu, server):
    emu.add_job("train", params={"MLCI_REQUEST_ID": ""})
    emu.script_job("train", queue_polls=1, cancel_in_queue=True, once=True)
    queue_id = server.build_job("train", {"MLCI_REQUEST_ID": "a"})
    item, number = wait_for_build(server, queue_id)
    assert item["cancelled"] is True and item["executable"] is None and number is None

    emu.script_job("train", queue_polls=1, queue_expires_after=1, once=True)
    queue_id = server.build_job("train", {"MLCI_REQUEST_ID": "b"})
    server.get_queue_item(queue_id)
    with pytest.raises(jenkins.JenkinsException, match=r"queue number\[\d+\] does not exist"):
        server.get_queue_item(queue_id)
    assert [b["params"]["MLCI_REQUEST_ID"] for b in emu.builds("train")] == ["b"]

    emu.script_job("train", console=["epoch 1", "epoch 2", "epoch 3"], queue_polls=0,
                   build_polls=10)
    queue_id = server.build_job("train", {"MLCI_REQUEST_ID": "c"})
    number = server.get_queue_item(queue_id)["executable"]["number"]
    assert server.get_build_info("train", number)["building"] is True
    server.stop_build("train", number)
    info = server.get_build_info("train", number)
    assert info["result"] == "ABORTED" and info["building"] is False
    assert server.get_build_console_output("train", number).endswith(
        "Aborted by mlci\nFinished: ABORTED\n")


def test_progressive_console(emu, server):
    lines = [f"line {i} \u00e9" for i in range(7)]
    emu.add_job("train")
    emu.script_job("train", console=lines, queue_polls=0, build_polls=4)
    number = server.get_queue_item(server.build_job("train"))["executable"]["number"]
    url = f"{emu.url}job/train/{number}/logText/progressiveText"
    received, start, chunks = b"", 0, []
    with requests.Session() as s:
        s.auth = ("mlci", TOKEN)
        for _ in range(20):
            r = s.get(url, params={"start": start}, timeout=5)
            r.raise_for_status()
            received += r.content
            chunks.append(r.content)
            start = int(r.headers["X-Text-Size"])
            if r.headers.get("X-More-Data") != "true":
                break
    assert len(chunks) == 5 and all(chunks[:4])  # text arrived over several polls
    assert received.decode("utf-8") == emu.console_text("train", number)
    assert received.decode("utf-8").endswith("line 6 \u00e9\nFinished: SUCCESS\n")
    assert start == len(received)
    # a start beyond the end means "the log rolled over": the whole log again
    r = requests.get(url, params={"start": 10**9}, auth=("mlci", TOKEN), timeout=5)
    assert r.content == received and "X-More-Data" not in r.headers


# ---- auth, crumbs, faults --------------------------------------------------------------------------

def test_api_token_requests_need_no_crumb(emu):
    """ApiCrumbExclusion.java: a request authenticated with an API token is exempt from CSRF crumbs; the
    same POST with the password needs one (CrumbFilter)."""
    emu.add_job("a")
    config = pipeline_config({"X": "1"})
    by_token = requests.post(emu.url + "job/a/config.xml", data=config, auth=("mlci", TOKEN), timeout=5)
    by_password = requests.post(emu.url + "job/a/config.xml", data=config, auth=("mlci", PASSWORD), timeout=5)
    assert by_token.status_code == 200
    assert by_password.status_code == 403 and NO_VALID_CRUMB in by_password.text


def test_stale_crumb_gives_403_until_refetched(emu, password_server):
    server = password_server
    server.create_job("a", pipeline_config())
    assert emu.crumbs_issued == 1
    emu.rotate_crumbs()
    with pytest.raises(jenkins.JenkinsException) as err:
        server.reconfig_job("a", pipeline_config({"X": "1"}))
    assert "[403]" in str(err.value) and NO_VALID_CRUMB in str(err.value)
    assert emu.config_writes["a"] == 1
    server.crumb = None  # what mlci's adapter does on that exact 403, once
    server.reconfig_job("a", pipeline_config({"X": "1"}))
    assert emu.config_writes["a"] == 2
    assert emu.crumbs_issued == 2
    # a lost session (controller restart) invalidates the crumb too
    emu.expire_sessions()
    with pytest.raises(jenkins.JenkinsException, match=NO_VALID_CRUMB):
        server.reconfig_job("a", pipeline_config())


def test_wrong_token_is_401_jenkins_exception(emu):
    bad = jenkins.Jenkins(emu.url, username="mlci", password="wrong-token", timeout=5)
    with pytest.raises(jenkins.JenkinsException) as err:
        bad.get_whoami()
    assert "[401]" in str(err.value) and "Invalid password/token for user: mlci" in str(err.value)
    assert "wrong-token" not in str(err.value)
    # anonymous lacks Overall/Read: 403 (HudsonAuthenticationEntryPoint), not 401
    anonymous = jenkins.Jenkins(emu.url, timeout=5)
    with pytest.raises(jenkins.JenkinsException, match=r"\[403\]"):
        anonymous.get_job_info("x")


def test_get_version_first_call_is_sent_without_credentials(emu, server):
    # get_version() bypasses python-jenkins' auth set-up: as the first call it goes out
    # anonymously and fails; after any other call it works.
    with pytest.raises(jenkins.BadHTTPException):
        server.get_version()
    assert emu.requests[-1].status == 403
    assert server.get_whoami()["id"] == "mlci"
    assert server.get_version() == JENKINS_VERSION


def test_fault_503_is_raw_http_error(emu, server):
    emu.add_job("train")
    fault = emu.fault(r"/job/train/build$", status=503)
    with pytest.raises(requests.HTTPError, match="503"):
        server.build_job("train")
    assert fault.hits == 1
    assert server.build_job("train") == 1  # times=1: the next request goes through
    # ...but some python-jenkins getters turn any HTTP error into "does not exist"
    emu.fault(r"/job/train/api/json$", status=503)
    with pytest.raises(jenkins.JenkinsException, match=r"job\[train\] does not exist"):
        server.get_job_info("train")
    emu.fault(r"/queue/item/", status=502)
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        server.get_queue_item(1)


def test_silent_server_times_out_and_stop_does_not_hang():
    emu = JenkinsEmulator(token=TOKEN).start()
    try:
        emu.fault(".*", silent=True, times=None)
        client = jenkins.Jenkins(emu.url, username="mlci", password=TOKEN, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(jenkins.TimeoutException):
            client.get_whoami()
        assert time.monotonic() - started < 3
        assert emu.requests[0].status is None
    finally:
        started = time.monotonic()
        emu.stop()
        assert time.monotonic() - started < 3


def test_slow_response_and_connection_refused(emu, server):
    emu.fault("/me/api/json", delay=0.3)
    started = time.monotonic()
    assert server.get_whoami()["id"] == "mlci"
    assert time.monotonic() - started >= 0.3
    emu.fault("/me/api/json", delay=2)
    quick = jenkins.Jenkins(emu.url, username="mlci", password=TOKEN, timeout=0.3)
    with pytest.raises(jenkins.TimeoutException):
        quick.get_whoami()
    emu.stop()
    with pytest.raises(requests.ConnectionError):  # not a JenkinsException
        server.get_whoami()


def test_lost_response_after_build_was_queued(emu, server):
    emu.add_job("train", params={"MLCI_REQUEST_ID": ""})
    emu.fault("buildWithParameters", drop=True, process=True)
    with pytest.raises(requests.ConnectionError):
        server.build_job("train", {"MLCI_REQUEST_ID": "lost-1"})
    queued = server.get_queue_info()
    assert [i["params"] for i in queued] == ["\nMLCI_REQUEST_ID=lost-1"]
    assert len(emu.requests_to("buildWithParameters")) == 1  # no automatic re-POST


def test_concurrent_clients(emu):
    emu.add_job("train", params={"MLCI_REQUEST_ID": ""})
    emu.script_job("train", queue_polls=3)
    ids, errors = [], []

    def trigger(i):
        try:
            client = jenkins.Jenkins(emu.url, username="mlci", password=TOKEN, timeout=5)
            ids.append(client.build_job("train", {"MLCI_REQUEST_ID": f"r-{i}"}))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=trigger, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors and sorted(ids) == list(range(1, 9))
    assert emu.crumbs_issued == 8  # one session and one crumb per client


def test_credentials_never_in_urls_or_recorded_headers(emu, server):
    emu.add_job("train", params={"MODEL": "iris"})
    server.build_job("train", {"MODEL": "x"})
    server.get_job_info("train")
    assert emu.requests
    for r in emu.requests:
        assert TOKEN not in r.path + "?" + r.query
        assert TOKEN not in repr(r.headers) and TOKEN.encode() not in r.body
        assert r.header("Authorization") is None


# ---- linter --------------------------------------------------------------------------------------

def test_linter_through_python_jenkins(emu, server):
    assert server.check_jenkinsfile_syntax(GOOD_JENKINSFILE) == []
    errors = server.check_jenkinsfile_syntax("pipeline {\n  stages {\n  }\n}\n")
    assert errors == [{"error": ['Missing required section "agent" @ line 1, column 1.',
                                 "No stages specified @ line 2, column 3."]}]
    errors = server.check_jenkinsfile_syntax("pipeline {\n  agent any\n  stages {\n")
    assert "expecting '}'" in errors[0]["error"]
    errors = server.check_jenkinsfile_syntax("node { sh 'make' }")
    assert "did not contain the 'pipeline' step" in errors[0]["error"]
    # the linter endpoint is CSRF-exempt in Jenkins: no crumb needed
    r = requests.post(emu.url + "pipeline-model-converter/validateJenkinsfile",
                      data={"jenkinsfile": GOOD_JENKINSFILE}, auth=("mlci", TOKEN), timeout=5)
    assert r.json() == {"status": "ok", "data": {"result": "success"}}


@pytest.mark.parametrize("source, ok, fragment", [
    (GOOD_JENKINSFILE, True, "Jenkinsfile successfully validated."),
    (GOOD_JENKINSFILE.replace("sh 'mlci gate'", "sh 'mlci gate"), False,
     "expecting ''', found '\\n'"),
    (GOOD_JENKINSFILE.replace("  agent any\n", ""), False, 'Missing required section "agent"'),
    (GOOD_JENKINSFILE + "}\n", False, "unexpected token: }"),
    ("pipeline {\n  agent any\n  stages {\n    stage('x') { echo 'y' }\n  }\n}\n", False,
     'Expected one of "steps", "stages", or "parallel" for stage "x"'),
], ids=["valid", "unterminated-string", "no-agent", "extra-brace", "stage-without-steps"])
def test_linter_text_endpoint(emu, source, ok, fragment):
    # the form curl sends (multipart) and a urlencoded form give the same answer
    for kwargs in ({"files": {"jenkinsfile": (None, source)}}, {"data": {"jenkinsfile": source}}):
        r = requests.post(emu.url + "pipeline-model-converter/validate", auth=("mlci", TOKEN),
                          timeout=5, **kwargs)
        assert r.status_code == 200
        assert r.text.startswith("Jenkinsfile successfully validated." if ok
                                 else "Errors encountered validating Jenkinsfile:\nWorkflowScript: ")
        assert fragment in r.text


def test_tree_queries(emu, server):
    emu.add_job("a/b/c")
    info = server.get_info(query="?tree=jobs[name,jobs[name]]")
    assert info == {"_class": "hudson.model.Hudson", "jobs": [
        {"_class": "com.cloudbees.hudson.plugins.folder.Folder", "name": "a", "jobs": [
            {"_class": "com.cloudbees.hudson.plugins.folder.Folder", "name": "b"}]}]}
    # folder_depth_per_request=1 forces python-jenkins to follow up per folder
    assert [j["fullname"] for j in server.get_all_jobs(folder_depth_per_request=1)] == [
        "a", "a/b", "a/b/c"]


# ---- held to the real sources: config round trip, declarative's rewrite, multibranch, validator ------------

DECLARATIVE = """\
pipeline {
  agent any
  triggers { cron('H 2 * * *') }
  options {
    timestamps()
    buildDiscarder(logRotator(numToKeepStr: '30'))
    disableConcurrentBuilds()
  }
  parameters {
    string(name: 'MLCI_REQUEST_ID', defaultValue: '', description: 'request id', trim: true)
    booleanParam(name: 'FAST', defaultValue: false, description: '')
  }
  stages { stage('a') { steps { echo 'a' } } }
}
"""


def test_posted_config_is_reserialized_without_unknown_elements(emu, server):
    """AbstractItem.updateByXml unmarshals through XStream: elements that are no field of the item class
    (or of an installed plugin's property) are not saved, so GET config.xml does not return them."""
    root = ET.fromstring(pipeline_config())
    ET.SubElement(root, "notAField").text = "x"
    ET.SubElement(root.find("properties"), "com.example.NotInstalledProperty")
    server.create_job("a", ET.tostring(root, "unicode"))
    served = server.get_job_config("a")
    assert "notAField" not in served and "NotInstalledProperty" not in served
    assert "<sandbox>true</sandbox>" in served


def test_the_first_declarative_build_rewrites_the_job_properties(emu, server):
    """pipeline-model-definition Utils.updateJobProperties: parameters {} replaces same-named parameters
    (an empty string default is stored as null: StringParameterDefinition.setDefaultValue), triggers {}
    replaces same-class triggers, options {} adds its job properties; others are kept."""
    root = ET.fromstring(pipeline_config({"MLCI_REQUEST_ID": "", "KEPT": "k"}, script=DECLARATIVE))
    server.create_job("a", ET.tostring(root, "unicode"))
    assert "<defaultValue></defaultValue>" in server.get_job_config("a").replace("<defaultValue />",
                                                                                  "<defaultValue></defaultValue>")
    queue_id = server.build_job("a", {"MLCI_REQUEST_ID": "r1"})
    wait_for_build(server, queue_id)
    served = ET.fromstring(server.get_job_config("a"))
    names = [p.findtext("name") for p in served.iter("hudson.model.StringParameterDefinition")]
    assert names == ["MLCI_REQUEST_ID", "KEPT"]
    request_id = next(p for p in served.iter("hudson.model.StringParameterDefinition")
                      if p.findtext("name") == "MLCI_REQUEST_ID")
    assert request_id.find("defaultValue") is None and request_id.findtext("trim") == "true"
    assert served.findtext(".//hudson.triggers.TimerTrigger/spec") == "H 2 * * *"
    assert served.findtext(".//jenkins.model.BuildDiscarderProperty/strategy/numToKeep") == "30"
    assert served.find(".//org.jenkinsci.plugins.workflow.job.properties."
                       "DisableConcurrentBuildsJobProperty") is not None
    assert [p.tag for p in served.find("properties")][:2] == [
        "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty",
        "hudson.model.ParametersDefinitionProperty"]
    # a second build changes nothing more
    before = server.get_job_config("a")
    wait_for_build(server, server.build_job("a", {"MLCI_REQUEST_ID": "r2"}))
    assert server.get_job_config("a") == before


MULTIBRANCH = """<?xml version='1.1' encoding='UTF-8'?>
<org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject plugin="workflow-multibranch">
  <description>mb</description>
  <properties/>
  <orphanedItemStrategy class="com.cloudbees.hudson.plugins.folder.computed.DefaultOrphanedItemStrategy">
    <pruneDeadBranches>true</pruneDeadBranches><daysToKeep>-1</daysToKeep><numToKeep>-1</numToKeep>
  </orphanedItemStrategy>
  <sources class="jenkins.branch.MultiBranchProject$BranchSourceList">
    <data><jenkins.branch.BranchSource>
      <source class="jenkins.plugins.git.GitSCMSource"><id>s1</id><remote>https://git.example.com/r.git</remote>
        <traits><jenkins.plugins.git.traits.BranchDiscoveryTrait/></traits></source>
    </jenkins.branch.BranchSource></data>
  </sources>
  <factory class="org.jenkinsci.plugins.workflow.multibranch.WorkflowBranchProjectFactory">
    <scriptPath>ci/Jenkinsfile</scriptPath>
  </factory>
  <unknownField/>
</org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject>
"""


def test_multibranch_indexing_creates_builds_and_prunes_branch_jobs(emu, server):
    """branch-api: POST build on the project runs indexing (ComputedFolder.doBuild); a branch job per
    branch holding the factory's scriptPath (WorkflowBranchProjectFactory), new or changed heads are
    built, dead branches deleted (DefaultOrphanedItemStrategy pruneDeadBranches); the branch job's
    first build applies the branch's declarative properties."""
    server.create_job("mb", MULTIBRANCH)
    assert "unknownField" not in server.get_job_config("mb")
    assert server.get_job_info("mb")["_class"].endswith("WorkflowMultiBranchProject")
    emu.add_repository("https://git.example.com/r.git", {"main": {"ci/Jenkinsfile": DECLARATIVE},
                                                         "old": {"ci/Jenkinsfile": DECLARATIVE},
                                                         "no-ci": {"README": "x"}})
    auth = ("mlci", TOKEN)
    assert requests.post(emu.url + "job/mb/build?delay=0", auth=auth, allow_redirects=False,
                         timeout=5).status_code == 302
    assert [j["name"] for j in server.get_job_info("mb")["jobs"]] == ["main", "old"]
    assert [i["job"] for i in emu.queue] == ["mb/main", "mb/old"]
    emu.start_queued()
    assert "<defaultValue>" not in server.get_job_config("mb/main").split("MLCI_REQUEST_ID")[1].split(
        "</hudson.model.StringParameterDefinition>")[0]
    emu.add_repository("https://git.example.com/r.git", {"main": {"ci/Jenkinsfile": DECLARATIVE + "\n"}})
    requests.post(emu.url + "job/mb/build", auth=auth, timeout=5)
    assert [j["name"] for j in server.get_job_info("mb")["jobs"]] == ["main"]
    assert [i["job"] for i in emu.queue] == ["mb/main", "mb/old", "mb/main"]
    requests.post(emu.url + "job/mb/build", auth=auth, timeout=5)  # nothing changed: nothing built
    assert len(emu.queue) == 3 and emu.scans("mb") == 3


@pytest.mark.parametrize("source, message", [
    ("pipeline { agent any\n options { timestamp() }\n stages { stage('a') { steps { echo 'a' } } } }",
     'Invalid option type "timestamp". Valid option types: [buildDiscarder, '),
    ("pipeline { agent { podman { image 'x' } }\n stages { stage('a') { steps { echo 'a' } } } }",
     'Invalid agent type "podman" specified. Must be one of [any, docker, dockerfile, kubernetes, label, '
     'node, none]'),
    ("pipeline { agent any\n stages { stage('a') { steps { sh script: 'x', returnStdOut: true } } } }",
     'Invalid parameter "returnStdOut", did you mean "returnStdout"?'),
    ("pipeline { agent any\n stages { stage('a') { steps { cleanWs(notFailBuilds: true) } } } }",
     'Invalid parameter "notFailBuilds", did you mean "notFailBuild"?'),
])
def test_the_validator_rejects_what_the_installed_plugins_do_not_define(emu, server, source, message):
    """ModelValidatorImpl with the messages of pipeline-model-definition Messages.properties
    (InvalidSectionType, InvalidAgentType, InvalidStepParameter)."""
    errors = server.check_jenkinsfile_syntax(source)
    assert any(message in str(e) for e in errors), errors


def test_the_validator_accepts_unknown_steps_like_jenkins_does(emu, server):
    """ModelValidatorImpl.validateElement(ModelASTStep) only validates steps it has a model for; an unknown
    step fails when the build runs ("No such DSL method"), not in the validator."""
    assert server.check_jenkinsfile_syntax(
        "pipeline { agent any\n stages { stage('a') { steps { slackSend(channel: '#x') } } } }") == []
