"""The python-jenkins adapter against the Jenkins REST API emulator: crumbs, faults, timeouts, redaction.

Every test uses a canary API token and asserts it never appears in an error message, and that no
request carried it in a URL.
"""

from __future__ import annotations

import logging
import secrets
import socket
import time

import pytest

from mlci.adapters.jenkins_client import JenkinsClient, redact_url
from mlci.errors import ServiceError
from mlci.ops.jenkins import jobxml
from tests.jenkins_emulator import JenkinsEmulator, pipeline_config

CANARY = "canary-" + secrets.token_hex(12)
PASSWORD = "password-" + secrets.token_hex(12)


@pytest.fixture
def emu():
    with JenkinsEmulator(user="mlci", token=CANARY, password=PASSWORD) as emulator:
        yield emulator
        for request in emulator.requests:
            assert CANARY not in request.path and CANARY not in request.query


def client_for(emu: JenkinsEmulator, **kwargs) -> JenkinsClient:
    return JenkinsClient(emu.url, user="mlci", token=kwargs.pop("token", CANARY), timeout=kwargs.pop("timeout", 5),
                         **kwargs)


def service_error(call) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        call()
    message = f"{info.value} {info.value.hint or ''}"
    assert CANARY not in message
    assert "\n" not in str(info.value)
    return info.value


def test_redact_url_drops_userinfo_query_and_fragment():
    assert redact_url("https://user:tok@jenkins.example.com:8443/a/b?token=x&p=1#frag") == \
        "https://jenkins.example.com:8443/a/b"
    assert redact_url("http://[::1]:8080/job/x?token=y") == "http://[::1]:8080/job/x"


def test_jobs_create_read_update_and_delete(emu):
    client = client_for(emu)
    assert client.job_config("mlci-job") is None
    config = pipeline_config({"MLCI_REQUEST_ID": ""})
    client.create_job("mlci-job", config)
    assert emu.config_writes["mlci-job"] == 1
    assert jobxml.covers(config, client.job_config("mlci-job"))
    client.update_job("mlci-job", config.replace("created by the Jenkins emulator", "changed"))
    assert "changed" in emu.jobs["mlci-job"]
    client.create_folder("team")
    client.create_job("team/inner", config)
    assert [j["name"] for j in client.job_info("team")["jobs"]] == ["inner"]
    client.delete_job("team/inner")
    assert client.job_info("team/inner") is None


def test_a_stale_crumb_is_refreshed_exactly_once(emu):
    """Crumbs only bind password logins: API-token requests are exempt (ApiCrumbExclusion.java)."""
    client = client_for(emu, token=PASSWORD)
    client.create_job("a", pipeline_config())
    issued = emu.crumbs_issued
    emu.rotate_crumbs()
    client.update_job("a", pipeline_config(script="pipeline { agent any }"))
    assert emu.crumbs_issued == issued + 1
    assert emu.config_writes["a"] == 2


def test_an_expired_session_gets_a_new_cookie_and_crumb(emu):
    client = client_for(emu, token=PASSWORD)
    client.create_job("a", pipeline_config())
    emu.expire_sessions()
    client.update_job("a", pipeline_config())
    assert emu.config_writes["a"] == 2


def test_a_crumb_refused_twice_is_exit_3(emu):
    client = client_for(emu)
    client.create_job("a", pipeline_config())
    emu.fault(r"/job/a/config\.xml", 403, method="POST", times=None,
              body="<html>No valid crumb was included in the request" + "x" * 50000 + "</html>")
    error = service_error(lambda: client.update_job("a", pipeline_config()))
    assert error.exit_code == 3
    assert "crumb was refused twice" in str(error)
    assert len(str(error)) < 300  # the 50 KB body is not in the message


def test_api_token_requests_are_not_refused_for_a_stale_crumb(emu):
    """ApiCrumbExclusion.java: with an API token, a rotated crumb changes nothing."""
    client = client_for(emu)
    client.create_job("a", pipeline_config())
    emu.rotate_crumbs()
    emu.expire_sessions()
    client.update_job("a", pipeline_config(script="pipeline { agent any }"))
    assert emu.config_writes["a"] == 2


def test_an_identical_queued_request_is_answered_303_and_names_the_queued_item(emu):
    """ParametersDefinitionProperty.buildWithParameters (jenkinsci/jenkins, read at ff9430ee1dc6): a request merged
    into a waiting queue item gets 303 See Other with that item's Location, which requests would follow with a GET
    to the item's page (Queue.Item.doIndex: 200, no Location)."""
    emu.add_job("train", pipeline_config({"MLCI_REQUEST_ID": ""}))
    emu.script_job("train", queue_polls=5)
    client = client_for(emu)
    first = client.trigger("train", {"MLCI_REQUEST_ID": "same"})
    second = client.trigger("train", {"MLCI_REQUEST_ID": "same"})
    assert first == second
    assert [r.status for r in emu.requests_to(r"/buildWithParameters$")] == [201, 303]
    assert emu.requests_to(r"^/queue/item/\d+/$") == []  # the redirect was not followed
    assert emu.queue_item(first)["causes"] == 2


def test_triggering_a_job_jenkins_will_not_build_says_why(emu):
    """jenkinsci/jenkins ParameterizedJobMixIn.doBuildWithParameters (read at ff9430ee1dc6; since 2.524): 409
    ``<job> is not buildable`` for a disabled job, 400 ``<job> is not parameterized`` for a job without parameters.
    python-jenkins passes both on as requests.HTTPError; mlci names the cause and the fix."""
    emu.add_job("plain")
    emu.add_job("off", params={"MLCI_REQUEST_ID": ""})
    emu.add_job("on", params={"MLCI_REQUEST_ID": ""})
    client = client_for(emu)
    client._server.disable_job("off")
    plain = service_error(lambda: client.trigger("plain", {"MLCI_REQUEST_ID": "r1"}))
    assert "HTTP 400 when triggering job plain" in str(plain) and "mlci jenkins sync" in plain.hint
    disabled = service_error(lambda: client.trigger("off", {"MLCI_REQUEST_ID": "r2"}))
    assert "HTTP 409 when triggering job off" in str(disabled) and "disabled" in disabled.hint
    assert client.trigger("on", {"MLCI_REQUEST_ID": "r3"}) == 1
    assert emu.queue_item(1)["job"] == "on"


def test_a_multibranch_scan(emu):
    """ComputedFolder.doBuild: POST build on a multibranch project runs branch indexing."""
    from mlci.ops.jenkins import jobxml as jx

    config = jx.multibranch_project_xml(project="p", summary="s", scm_url="https://git.example.com/p.git",
                                        script_path="Jenkinsfile")
    client = client_for(emu)
    client.create_job("p", config)
    emu.add_repository("https://git.example.com/p.git", {"main": {"Jenkinsfile": "pipeline { }"}})
    client.scan("p")
    assert emu.scans("p") == 1
    assert [j["name"] for j in client.job_info("p")["jobs"]] == ["main"]


def test_wrong_token_is_an_authentication_error(emu):
    client = client_for(emu, token="wrong-" + CANARY)
    error = service_error(lambda: client.job_info("x"))
    assert "authentication failed" in str(error) and "HTTP 401" in str(error)
    assert "JENKINS_API_TOKEN" in error.hint


@pytest.mark.parametrize("status", [400, 500, 502, 503])
def test_http_errors_on_build_never_leak_the_query_string(emu, status):
    emu.add_job("p", params={"MLCI_REQUEST_ID": ""})
    emu.fault(r"/job/p/buildWithParameters", status)
    client = client_for(emu)
    error = service_error(lambda: client.trigger("p", {"MLCI_REQUEST_ID": "r1", "SECRET_PARAM": CANARY}))
    assert f"HTTP {status}" in str(error)
    assert "?" not in str(error) and "MLCI_REQUEST_ID" not in str(error)


def test_a_silent_server_times_out(emu):
    emu.fault(r"/api/json", silent=True)
    client = client_for(emu, timeout=0.5)
    started = time.monotonic()
    error = service_error(lambda: client.root_jobs())
    assert time.monotonic() - started < 5
    assert "did not respond within 0.5s" in str(error)


def test_a_slow_but_answering_server_is_fine(emu):
    emu.fault(r"/api/json", delay=0.3)
    assert client_for(emu, timeout=5).root_jobs() == []


def test_connection_refused_with_credentials_in_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = JenkinsClient(f"http://mlci:{CANARY}@127.0.0.1:{port}/?token={CANARY}", timeout=2)
    error = service_error(lambda: client.root_jobs())
    assert str(error).startswith(f"cannot connect to Jenkins at http://127.0.0.1:{port}/")


def test_userinfo_in_the_url_is_used_for_auth_but_never_shown(emu):
    url = emu.url.replace("http://", f"http://mlci:{CANARY}@")
    client = JenkinsClient(url, timeout=5)
    assert client.url == emu.url
    assert client.root_jobs() == []


def test_a_dropped_connection_is_exit_3(emu):
    emu.fault(r"/api/json", drop=True)
    error = service_error(lambda: client_for(emu).root_jobs())
    assert str(error) == f"cannot connect to Jenkins at {emu.url} (listing jobs)"
    assert error.exit_code == 3 and error.hint == "check JENKINS_URL and that the server is up"


def test_progressive_console_reads_every_byte_once(emu):
    emu.script_job("p", console=[f"line {i}" for i in range(6)], queue_polls=0, build_polls=3)
    emu.add_job("p", params={"MLCI_REQUEST_ID": ""})
    client = client_for(emu)
    client.trigger("p", {"MLCI_REQUEST_ID": "r"})
    offset, chunks, more = 0, [], True
    while more:
        text, offset, more = client.console_chunks("p", 1, offset)
        chunks.append(text)
    assert len(chunks) > 2
    assert "".join(chunks) == emu.build_info("p", 1)["full_console"]


def test_server_linter(emu):
    client = client_for(emu)
    assert client.lint("pipeline { agent any\n stages { stage('a') { steps { echo 'x' } } } }") == []
    errors = client.lint("pipeline { stages { stage('a') { steps { echo 'x' } } } }")
    assert errors and "agent" in errors[0]


def test_extra_headers_are_not_logged(emu, monkeypatch, caplog):
    monkeypatch.setenv("JENKINS_API_EXTRA_HEADERS", f"X-Extra: {CANARY}")
    with caplog.at_level(logging.DEBUG):
        client_for(emu).root_jobs()
    assert CANARY not in caplog.text
