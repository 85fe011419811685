"""Jenkins item ``config.xml`` for the mlci jobs, built with ElementTree (never with string templates).

* The commit pipeline is by default a multibranch project (``WorkflowMultiBranchProject``, plugin
  workflow-multibranch): a Git branch source discovers the branches, each gets a job built from its own
  ``Jenkinsfile``, so ``BRANCH_NAME`` is set and ``when { branch 'main' }`` works
  (pipeline-model-definition ``BranchConditionalScript.groovy``; its help says "Only works in Multibranch").
* The nightly pipeline, and the commit pipeline with ``jenkins.job_type: pipeline``, are single-branch
  Pipeline jobs whose script comes from SCM (``CpsScmFlowDefinition``: always sandboxed). The commit job then
  carries an ``SCMTrigger``: git-plugin's ``GitStatus.java`` (``/git/notifyCommit``) only schedules jobs that
  have one.

Declarative owns what the Jenkinsfile declares: on every build ``Utils.updateJobProperties``
(pipeline-model-definition ``Utils.groovy``) replaces same-named parameters, same-class triggers and
same-class job properties with the declared ones and keeps the others. So mlci posts only what it needs
before the first build (the request-id parameter, the triggers) and posts it in the shape declarative
writes back (a ``string`` parameter with default ``''`` is stored with no ``defaultValue``:
``StringParameterDefinition.setDefaultValue``), and :func:`covers` compares only the parts mlci manages.

The description carries a marker naming the project, so ``sync --prune`` deletes only jobs it manages.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

REQUEST_ID_PARAMETER = "MLCI_REQUEST_ID"
REQUEST_ID_DESCRIPTION = "request id of `mlci jenkins build`"
MARKER = "[managed by mlci: project {project}]"

PIPELINE_ROOT = "flow-definition"
MULTIBRANCH_ROOT = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
MULTIBRANCH_CLASS = MULTIBRANCH_ROOT  # the ``_class`` of its api/json
PARAMETERS_PROPERTY = "hudson.model.ParametersDefinitionProperty"
TRIGGERS_PROPERTY = "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty"
SCM_TRIGGER = "hudson.triggers.SCMTrigger"
TIMER_TRIGGER = "hudson.triggers.TimerTrigger"
GIT_SOURCE = "jenkins.plugins.git.GitSCMSource"
BRANCH_DISCOVERY = "jenkins.plugins.git.traits.BranchDiscoveryTrait"
PERIODIC_FOLDER_TRIGGER = "com.cloudbees.hudson.plugins.folder.computed.PeriodicFolderTrigger"
ONE_DAY_MS = 86_400_000
_XML_DECLARATION = "<?xml version='1.1' encoding='UTF-8'?>\n"


def managed_marker(project: str) -> str:
    return MARKER.format(project=project)


def _parse(config_xml: str | bytes) -> ET.Element | None:
    try:
        return ET.fromstring(config_xml.encode("utf-8") if isinstance(config_xml, str) else config_xml)
    except ET.ParseError:
        return None


def is_managed(config_xml: str, project: str) -> bool:
    """True when the item's description carries this project's marker."""
    root = _parse(config_xml)
    return root is not None and managed_marker(project) in (root.findtext("description") or "")


def _description(root: ET.Element, project: str, summary: str) -> None:
    ET.SubElement(root, "description").text = (
        f"{summary}\n{managed_marker(project)} Changes made here are overwritten by `mlci jenkins sync`.")


def _finish(root: ET.Element) -> str:
    ET.indent(root)
    return _XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n"


# ---- single-branch Pipeline job ------------------------------------------------------------------------


def pipeline_job_xml(*, project: str, summary: str, scm_url: str, branch: str, script_path: str,
                     scm_credentials: str | None = None, cron: str | None = None,
                     poll: str | None = None) -> str:
    """A sandboxed Pipeline-from-SCM job with the request-id parameter; ``cron`` adds a TimerTrigger,
    ``poll`` (may be ``''``: webhooks only) an SCMTrigger."""
    root = ET.Element(PIPELINE_ROOT, plugin="workflow-job")
    ET.SubElement(root, "actions")
    _description(root, project, summary)
    ET.SubElement(root, "keepDependencies").text = "false"
    properties = ET.SubElement(root, "properties")
    _request_id_parameter(properties)
    triggers = {}
    if cron:
        triggers[TIMER_TRIGGER] = cron
    if poll is not None:
        triggers[SCM_TRIGGER] = poll
    if triggers:
        _pipeline_triggers(properties, triggers)
    definition = ET.SubElement(root, "definition", {
        "class": "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition", "plugin": "workflow-cps"})
    _git_scm(definition, scm_url, branch, scm_credentials)
    ET.SubElement(definition, "scriptPath").text = script_path
    ET.SubElement(definition, "lightweight").text = "true"
    ET.SubElement(root, "triggers")
    ET.SubElement(root, "disabled").text = "false"
    return _finish(root)


def _request_id_parameter(properties: ET.Element) -> None:
    """The parameter as declarative's ``string(name:, defaultValue: '', description:, trim: true)`` leaves
    it: ``setDefaultValue('')`` stores null, which XStream does not write (StringParameterDefinition.java)."""
    holder = ET.SubElement(properties, PARAMETERS_PROPERTY)
    definitions = ET.SubElement(holder, "parameterDefinitions")
    parameter = ET.SubElement(definitions, "hudson.model.StringParameterDefinition")
    ET.SubElement(parameter, "name").text = REQUEST_ID_PARAMETER
    ET.SubElement(parameter, "description").text = REQUEST_ID_DESCRIPTION
    ET.SubElement(parameter, "trim").text = "true"


def _pipeline_triggers(properties: ET.Element, specs: dict[str, str]) -> None:
    holder = ET.SubElement(properties, TRIGGERS_PROPERTY)
    triggers = ET.SubElement(holder, "triggers")
    for trigger_class, spec in specs.items():
        trigger = ET.SubElement(triggers, trigger_class)
        ET.SubElement(trigger, "spec").text = spec
        if trigger_class == SCM_TRIGGER:
            ET.SubElement(trigger, "ignorePostCommitHooks").text = "false"


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


# ---- multibranch project -----------------------------------------------------------------------------


def source_id(project: str) -> str:
    """A stable branch-source id: branch-api keys branch jobs by it, so a new id on every sync would
    orphan and rebuild every branch."""
    return f"mlci-{project}-git"


def multibranch_project_xml(*, project: str, summary: str, scm_url: str, script_path: str,
                            scm_credentials: str | None = None, scan_interval_ms: int = ONE_DAY_MS) -> str:
    """A multibranch Pipeline project over one Git repository (branch discovery only).

    Pull requests come from provider-specific sources (GitHub Branch Source, Bitbucket Branch Source);
    their users swap the ``GitSCMSource`` for the provider's source in Jenkins or with Job DSL.
    The periodic scan is the fallback when no webhook reaches Jenkins.
    """
    root = ET.Element(MULTIBRANCH_ROOT, plugin="workflow-multibranch")
    ET.SubElement(root, "actions")
    _description(root, project, summary)
    ET.SubElement(root, "properties")
    strategy = ET.SubElement(root, "orphanedItemStrategy", {
        "class": "com.cloudbees.hudson.plugins.folder.computed.DefaultOrphanedItemStrategy",
        "plugin": "cloudbees-folder"})
    ET.SubElement(strategy, "pruneDeadBranches").text = "true"
    ET.SubElement(strategy, "daysToKeep").text = "-1"
    ET.SubElement(strategy, "numToKeep").text = "-1"
    ET.SubElement(strategy, "abortBuilds").text = "false"
    triggers = ET.SubElement(root, "triggers")
    periodic = ET.SubElement(triggers, PERIODIC_FOLDER_TRIGGER, plugin="cloudbees-folder")
    ET.SubElement(periodic, "spec").text = "H H * * *"
    ET.SubElement(periodic, "interval").text = str(scan_interval_ms)
    ET.SubElement(root, "disabled").text = "false"
    sources = ET.SubElement(root, "sources", {"class": "jenkins.branch.MultiBranchProject$BranchSourceList",
                                              "plugin": "branch-api"})
    data = ET.SubElement(sources, "data")
    branch_source = ET.SubElement(data, "jenkins.branch.BranchSource")
    source = ET.SubElement(branch_source, "source", {"class": GIT_SOURCE, "plugin": "git"})
    ET.SubElement(source, "id").text = source_id(project)
    ET.SubElement(source, "remote").text = scm_url
    if scm_credentials:
        ET.SubElement(source, "credentialsId").text = scm_credentials
    traits = ET.SubElement(source, "traits")
    ET.SubElement(traits, BRANCH_DISCOVERY)
    branch_strategy = ET.SubElement(branch_source, "strategy",
                                    {"class": "jenkins.branch.DefaultBranchPropertyStrategy"})
    ET.SubElement(branch_strategy, "properties", {"class": "empty-list"})
    ET.SubElement(sources, "owner", {"class": MULTIBRANCH_ROOT, "reference": "../.."})
    factory = ET.SubElement(root, "factory", {
        "class": "org.jenkinsci.plugins.workflow.multibranch.WorkflowBranchProjectFactory"})
    ET.SubElement(factory, "owner", {"class": MULTIBRANCH_ROOT, "reference": "../.."})
    ET.SubElement(factory, "scriptPath").text = script_path
    return _finish(root)


# ---- comparison ----------------------------------------------------------------------------------------


def _text(element: ET.Element | None, path: str) -> str:
    return ((element.findtext(path) if element is not None else None) or "").strip()


def _children(element: ET.Element, path: str) -> list[ET.Element]:
    found = element.find(path)
    return list(found) if found is not None else []


def managed_view(config_xml: str) -> dict | None:
    """The parts of an item's config that mlci manages, as plain data (None: not XML).

    Left out on purpose: plugin versions, the XML declaration, element order and everything declarative
    or Jenkins adds (options' job properties, generated ids, views, icons).
    """
    root = _parse(config_xml)
    if root is None:
        return None
    view: dict = {"class": root.tag, "description": _text(root, "description"),
                  "disabled": _text(root, "disabled") or "false"}
    if root.tag == MULTIBRANCH_ROOT:
        view["sources"] = sorted(
            (s.get("class"), _text(s, "id"), _text(s, "remote"), _text(s, "credentialsId"),
             tuple(sorted(t.tag for t in _children(s, "traits")))) for s in root.iter("source"))
        view["scriptPath"] = _text(root.find("factory"), "scriptPath")
        strategy = root.find("orphanedItemStrategy")
        view["orphans"] = tuple(_text(strategy, k) for k in ("pruneDeadBranches", "daysToKeep", "numToKeep"))
        view["scan_interval"] = [_text(t, "interval") for t in root.iter(PERIODIC_FOLDER_TRIGGER)]
        return view
    definition = root.find("definition")
    view["definition"] = (definition.get("class") if definition is not None else None,
                          _text(definition, "scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url"),
                          _text(definition, "scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/credentialsId"),
                          tuple(_text(b, "name") for b in root.iter("hudson.plugins.git.BranchSpec")),
                          _text(definition, "scriptPath"), _text(definition, "lightweight"))
    view["triggers"] = {t.tag: _text(t, "spec") for holder in root.iter(TRIGGERS_PROPERTY)
                        for t in _children(holder, "triggers")}
    view["parameters"] = {_text(p, "name"): p.tag for holder in root.iter(PARAMETERS_PROPERTY)
                          for p in _children(holder, "parameterDefinitions")}
    return view


def covers(desired: str, actual: str) -> bool:
    """Does the item's current config already hold everything mlci wants in it?

    Same managed parts; triggers and parameters that someone else added (declarative keeps parameters and
    triggers it did not declare, ``Utils.getParametersToApply``/``getTriggersToApply``) are not a change.
    """
    want, have = managed_view(desired), managed_view(actual)
    if want is None or have is None:
        return False
    for key in ("triggers", "parameters"):
        extra = want.pop(key, {})
        present = have.pop(key, {})
        if any(present.get(k) != v for k, v in extra.items()):
            return False
    return want == have


def keep_unmanaged_properties(desired: str, current: str) -> str:
    """``desired`` plus the job properties of ``current`` that mlci does not write (the build discarder and
    concurrency properties declarative ``options {}`` added), so an update does not drop them until the
    next build."""
    want, have = _parse(desired), _parse(current)
    if want is None or have is None or want.tag != have.tag:
        return desired
    properties, present = want.find("properties"), have.find("properties")
    if properties is None or present is None:
        return desired
    written = {p.tag for p in properties}
    for prop in present:
        if prop.tag not in written:
            properties.append(prop)
    for element in want.iter():
        element.tail = None
        if element.text is not None and not element.text.strip():
            element.text = None
    return _finish(want)


def pretty(config_xml: str) -> str:
    """A stable, indented text form of a config for diffs (declaration and plugin versions dropped)."""
    root = _parse(config_xml)
    if root is None:
        return config_xml
    for element in root.iter():
        element.attrib.pop("plugin", None)
        if element.text is not None and not element.text.strip():
            element.text = None
        element.tail = None
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"
