"""Jenkins job ``config.xml`` for the mlci jobs, built with ElementTree (never with string templates).

Each job is a Pipeline job whose script comes from SCM (``CpsScmFlowDefinition``): Jenkins always runs
such scripts in the Groovy sandbox, and the Jenkinsfile path points into the checked-out repository.
The description carries a marker naming the project, so ``sync --prune`` deletes only jobs it manages.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

REQUEST_ID_PARAMETER = "MLCI_REQUEST_ID"
MARKER = "[managed by mlci: project {project}]"


def managed_marker(project: str) -> str:
    return MARKER.format(project=project)


def is_managed(config_xml: str, project: str) -> bool:
    """True when the job's description carries this project's marker."""
    try:
        root = ET.fromstring(config_xml.encode("utf-8") if isinstance(config_xml, str) else config_xml)
    except ET.ParseError:
        return False
    return managed_marker(project) in (root.findtext("description") or "")


def pipeline_job_xml(*, project: str, summary: str, scm_url: str, branch: str, script_path: str,
                     scm_credentials: str | None = None, cron: str | None = None) -> str:
    """A sandboxed Pipeline-from-SCM job with the request-id parameter and an optional cron trigger."""
    root = ET.Element("flow-definition", plugin="workflow-job")
    ET.SubElement(root, "actions")
    ET.SubElement(root, "description").text = (
        f"{summary}\n{managed_marker(project)} Changes made here are overwritten by `mlci jenkins sync`.")
    ET.SubElement(root, "keepDependencies").text = "false"
    properties = ET.SubElement(root, "properties")
    _request_id_parameter(properties)
    if cron:
        _cron_trigger(properties, cron)
    definition = ET.SubElement(root, "definition", {
        "class": "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition", "plugin": "workflow-cps"})
    _git_scm(definition, scm_url, branch, scm_credentials)
    ET.SubElement(definition, "scriptPath").text = script_path
    ET.SubElement(definition, "lightweight").text = "true"
    ET.SubElement(root, "triggers")
    ET.SubElement(root, "disabled").text = "false"
    ET.indent(root)
    return "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="unicode") + "\n"


def _request_id_parameter(properties: ET.Element) -> None:
    holder = ET.SubElement(properties, "hudson.model.ParametersDefinitionProperty")
    definitions = ET.SubElement(holder, "parameterDefinitions")
    parameter = ET.SubElement(definitions, "hudson.model.StringParameterDefinition")
    ET.SubElement(parameter, "name").text = REQUEST_ID_PARAMETER
    ET.SubElement(parameter, "description").text = "request id of `mlci jenkins build`"
    ET.SubElement(parameter, "defaultValue").text = ""
    ET.SubElement(parameter, "trim").text = "true"


def _cron_trigger(properties: ET.Element, cron: str) -> None:
    holder = ET.SubElement(properties, "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty")
    triggers = ET.SubElement(holder, "triggers")
    timer = ET.SubElement(triggers, "hudson.triggers.TimerTrigger")
    ET.SubElement(timer, "spec").text = cron


def _git_scm(definition: ET.Element, url: str, branch: str, credentials: str | None) -> None:
    scm = ET.SubElement(definition, "scm", {"class": "hudson.plugins.git.GitSCM", "plugin": "git"})
    ET.SubElement(scm, "configVersion").text = "2"
    remotes = ET.SubElement(scm, "userRemoteConfigs")
    remote = ET.SubElement(remotes, "hudson.plugins.git.UserRemoteConfig")
    ET.SubElement(remote, "url").text = url
    if credentials:
        ET.SubElement(remote, "credentialsId").text = credentials
    branches = ET.SubElement(scm, "branches")
    ET.SubElement(ET.SubElement(branches, "hudson.plugins.git.BranchSpec"), "name").text = f"*/{branch}"
    ET.SubElement(scm, "doGenerateSubmoduleConfigurations").text = "false"
    ET.SubElement(scm, "submoduleCfg", {"class": "empty-list"})
    ET.SubElement(scm, "extensions")


def covers(desired: str, actual: str) -> bool:
    """Does the job's current config already hold everything mlci wants in it?

    Jenkins re-serialises configs (plugin versions in attributes, XML 1.1 header) and a running
    declarative pipeline adds job properties of its own, so equality is too strict: every element,
    attribute (except ``plugin``) and non-blank text of ``desired`` must appear in ``actual``.
    """
    try:
        return _covers(ET.fromstring(desired.encode("utf-8")), ET.fromstring(actual.encode("utf-8")))
    except ET.ParseError:
        return False


def _covers(want: ET.Element, have: ET.Element) -> bool:
    if want.tag != have.tag or (want.text or "").strip() != (have.text or "").strip():
        return False
    if any(have.get(k) != v for k, v in want.attrib.items() if k != "plugin"):
        return False
    remaining = list(have)
    for child in want:
        match = next((c for c in remaining if _covers(child, c)), None)
        if match is None:
            return False
        remaining.remove(match)
    return True


def pretty(config_xml: str) -> str:
    """A stable, indented text form of a config for diffs (declaration and plugin versions dropped)."""
    try:
        root = ET.fromstring(config_xml.encode("utf-8"))
    except ET.ParseError:
        return config_xml
    for element in root.iter():
        element.attrib.pop("plugin", None)
        if element.text is not None and not element.text.strip():
            element.text = None
        element.tail = None
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"
