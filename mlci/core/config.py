"""``mlci.yaml``: the one file that describes an ML project. One section class per concern.

Precedence: command-line flag > ``MLCI_*`` environment variable > file > default. Environment
overrides name a key path with double underscores: ``MLCI_MODEL__SEED=7``, ``MLCI_JENKINS__URL=...``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlci.core.csvoptions import CsvOptions  # re-exported: data.csv of mlci.yaml
from mlci.core.redact import redact_url, url_problem
from mlci.core.spec import IDENTIFIER, build, opt, section
from mlci.core.yamlsrc import YamlDocument, load_yaml_file, load_yaml_text
from mlci.errors import ConfigError, ConfigIssue

CONFIG_FILE = "mlci.yaml"
ENV_PREFIX = "MLCI_"
Task = Literal["binary", "multiclass", "regression"]
Severity = Literal["fail", "warn"]


@section
class DataSection:
    """Where the data lives. Paths are relative to the project directory."""

    train: str = opt(path=True, help="training data, CSV or Parquet")
    holdout: str | None = opt(None, path=True, help="evaluation data; without it a seeded split of `train` is held out")
    holdout_fraction: float = opt(0.2, min=0.01, max=0.9, help="share of `train` held out when `holdout` is not set")
    schema: str = opt("schema.yaml", path=True, help="the data schema file (see `mlci schema infer`)")
    csv: CsvOptions = opt(CsvOptions, help="CSV reading options")
    batch_rows: int = opt(200_000, min=1000, help="rows per batch when streaming large files")


@section
class PipelineStep:
    """A transformer between the schema-derived preprocessing and the estimator."""

    name: str = opt(pattern=IDENTIFIER, help="the step's name in the scikit-learn Pipeline")
    transformer: str = opt(help="import path of a scikit-learn compatible transformer class")
    params: dict[str, Any] = opt(dict, help="keyword arguments for the transformer")


@section
class ModelSection:
    """What to train."""

    task: Task = opt(help="binary, multiclass or regression")
    estimator: str = opt(help="import path of a scikit-learn compatible estimator class")
    params: dict[str, Any] = opt(dict, help="keyword arguments for the estimator")
    steps: list[PipelineStep] = opt(list, help="transformers applied after the preprocessing, before the "
                                    "estimator (they make a scikit-learn Pipeline with it)")
    seed: int = opt(42, min=0, help="random seed for splits, estimator and bootstrap")
    cv_folds: int = opt(5, min=0, max=50, help="k-fold cross-validation folds (0 turns it off)")
    metrics: list[str] = opt(list, help="metrics reported in cross-validation (default: per task)")
    scale_numeric: bool = opt(True, help="standardise numeric columns")
    datetime_parts: list[Literal["year", "month", "day", "dayofweek", "hour"]] = opt(
        list, help="parts extracted from datetime columns")


@section
class EvaluationSection:
    """Holdout evaluation."""

    slices: list[str] = opt(list, help="columns whose values get per-slice metrics: category, boolean or "
                            "integer columns of the schema, not the target, with at most 50 values")
    latency_rows: int = opt(200, min=1, help="most rows timed one by one for prediction latency (fewer once "
                            "the p50 and p95 settle, see docs/model.md)")
    latency_seconds: float = opt(5.0, min=0.1, help="stop timing single rows after this long")
    importance: bool = opt(True, help="permutation importance of each input column in the report (about "
                           "three predictions of up to 1,000 rows per column; turn off for many columns)")


@section
class SliceRef:
    column: str = opt(help="slice column")
    value: str | int | float | bool = opt(help="slice value")


@section
class GateRule:
    """One rule. Give `min` and/or `max` for a threshold, or `max_drop` to compare with the champion."""

    metric: str = opt(help="metric name, e.g. roc_auc, f1_macro, rmse")
    min: float | None = opt(None, help="the metric must be at least this")
    max: float | None = opt(None, help="the metric must be at most this")
    max_drop: float | None = opt(None, min=0, help="allowed drop against the champion (ε)")
    relative: bool = opt(False, help="max_drop is a fraction of the champion's value")
    bootstrap: bool = opt(False, help="require the bootstrap lower bound of (challenger - champion) >= -ε")
    slice: SliceRef | None = opt(None, help="apply the rule to one slice")
    severity: Severity = opt("fail", help="fail: exit 1; warn: reported, exit 0, UNSTABLE in Jenkins")
    name: str | None = opt(None, help="a name for reports (default: derived)")

    def check(self):
        if self.min is None and self.max is None and self.max_drop is None:
            yield (), "a rule needs min, max or max_drop", "e.g. `min: 0.8`"
        if self.bootstrap and self.max_drop is None:
            yield ("bootstrap",), "bootstrap needs max_drop", "set `max_drop: 0` for 'no worse'"
        if self.min is not None and self.max is not None and self.min > self.max:
            yield ("min",), f"min {self.min} is above max {self.max}: the rule can never pass", "swap them"


@section
class GatesSection:
    """Quality gates that decide whether a model may ship."""

    rules: list[GateRule] = opt(list, help="the rules, checked in order")
    champion: str = opt("production", pattern=IDENTIFIER, help="registry alias of the model to beat")
    first_run: Literal["pass", "fail"] = opt("pass", help="verdict of champion rules when there is no champion")
    confidence: float = opt(0.95, min=0.5, max=0.999, help="confidence level of bootstrap bounds")
    bootstrap_samples: int = opt(1000, min=100, max=100_000, help="paired bootstrap resamples")


@section
class RegistrySection:
    """Where model versions, their lineage and aliases live. Every Jenkins job must reach it."""

    backend: Literal["local", "mlflow"] = opt("local", help="local: a directory (on shared storage for Jenkins); "
                                              "mlflow: an MLflow tracking server's Model Registry")
    path: str = opt(".mlci/registry", path=True, help="directory of the local registry (absolute for shared storage)")
    lock_timeout: float = opt(60.0, min=0.1, help="seconds to wait for the registry lock")
    tracking_uri: str | None = opt(None, help="MLflow tracking server (default: the MLFLOW_TRACKING_URI variable)")
    model_name: str | None = opt(None, pattern=IDENTIFIER,
                                 help="MLflow registered model name (default: the project name)")
    credentials: str | None = opt(None, pattern=IDENTIFIER, help="Jenkins credentials id (username/password) bound "
                                  "to MLFLOW_TRACKING_USERNAME/PASSWORD in the pipelines")

    def check(self):
        uri = self.tracking_uri or ""
        problem = url_problem(uri) if uri.lower().startswith(("http://", "https://")) else None
        if problem:
            yield ("tracking_uri",), f"'{redact_url(uri)}' is not a valid URL: {problem}", \
                "use http(s)://host[:port]; credentials go in registry.credentials"


@section
class ImageSection:
    """The serving image."""

    name: str = opt(help="image repository, e.g. registry.example.com/team/credit-risk")
    base: str = opt("python:3.11-slim", help="base image with Python 3")
    registry: str | None = opt(None, help="registry host[:port] to push to (default: from `name`)")
    registry_credentials: str | None = opt(None, pattern=IDENTIFIER,
                                           help="Jenkins credentials id for the registry (username/password)")
    python: str = opt("3.11", pattern=r"^3\.\d{1,2}$",
                      help="Python version of the base image; the wheelhouse is fetched for it")
    user_id: int = opt(10001, min=1, max=2**31 - 1, help="uid of the non-root user the server runs as")

    def check(self):
        if self.registry is not None and not _REGISTRY_HOST.match(self.registry):
            yield ("registry",), f"'{redact_url(self.registry)}' is not a registry host[:port]", \
                "e.g. registry.example.com or 127.0.0.1:5000; credentials go in registry_credentials"
        host = self.name.split("/", 1)[0] if "/" in self.name else ""
        if ("." in host or ":" in host or "@" in host) and not _REGISTRY_HOST.match(host):
            yield ("name",), f"'{redact_url(self.name)}' does not start with a valid registry host[:port]", \
                "e.g. registry.example.com:5000/team/model; credentials go in registry_credentials"


@section
class ExperimentGuardrails:
    """Limits on the challenger read from the server's own metrics; crossing one stops the experiment."""

    max_error_rate: float = opt(0.01, min=0, max=1, help="largest share of the challenger's batches that may fail")
    max_latency_ratio: float = opt(1.5, min=1, help="largest p99 scoring time of the challenger, as a multiple "
                                   "of the champion's")


@section
class ExperimentSection:
    """A live experiment: the challenger next to the environment's model, concluded on labelled requests."""

    challenger: str = opt("latest", help="version or alias of the challenger (default: the newest version)")
    mode: Literal["shadow", "canary"] = opt("shadow", help="shadow: the champion answers, the challenger "
                                            "scores the same rows; canary: a share of requests is answered "
                                            "by the challenger")
    share: float = opt(0.1, min=0, max=1, help="canary: share of requests the challenger answers")
    key: str | None = opt(None, help="canary: request header or record field whose value keeps a caller on "
                          "one model (default: random per request)")
    metric: Literal["accuracy", "brier", "mae"] = opt("accuracy", help="per-row score compared on labelled "
                                                      "requests")
    clip: float | None = opt(None, min=0, help="mae: largest absolute error counted (required for mae)")
    max_drop: float = opt(0.0, min=0, help="tolerated drop against the champion (ε), as the gate reads it")
    relative: bool = opt(False, help="max_drop is a fraction of the champion's value")
    alpha: float = opt(0.05, min=0.001, max=0.5, help="error level of the always-valid bound")
    expected_rows: int = opt(1000, min=1, help="labelled rows where the bound should be tightest")
    min_rows: int = opt(100, min=0, help="no decision before this many labelled rows (per arm for canary)")
    queue_rows: int = opt(10_000, min=100, help="shadow: rows waiting for the challenger; beyond it shadow "
                          "scoring is skipped and counted")
    guardrails: ExperimentGuardrails = opt(ExperimentGuardrails, help="limits from the server's metrics")

    def check(self):
        if self.metric == "mae" and not self.clip:
            yield ("clip",), "the mae metric needs clip", "set `clip:` to the largest absolute error counted"


@section
class Environment:
    """A deployment target."""

    target: Literal["docker", "kubernetes", "local"] = opt(help="docker, kubernetes or local")
    port: int = opt(8080, min=1, max=65535, help="port the service listens on")
    health_timeout: float = opt(60.0, min=1, help="seconds to wait for readiness before rolling back")
    namespace: str = opt("default", pattern=IDENTIFIER, help="kubernetes namespace")
    replicas: int = opt(1, min=1, help="kubernetes replicas")
    autoscale_max: int | None = opt(None, min=1, help="add an HPA up to this many replicas")
    cpu: str = opt("500m", help="kubernetes cpu request")
    memory: str = opt("512Mi", help="kubernetes memory request")
    approval: bool = opt(False, help="the Jenkins pipeline asks for approval before deploying here")
    approvers: list[str] = opt(list, help="Jenkins users or groups who may approve (input `submitter`; "
                               "default: anyone who may build the job)")
    approval_timeout_hours: int = opt(24, min=1, max=720, help="hours an approval waits before the build "
                                      "is aborted (no executor is held while it waits)")
    branch: str | None = opt(None, help="deploy only from this branch (default: jenkins.branch)")
    smoke_rows: int = opt(5, min=0, max=1000, help="holdout rows sent to /predict before the switch (0: none)")
    kubectl_context: str | None = opt(None, help="kubectl context of the cluster (default: kubectl's current)")
    pre_stop_seconds: int = opt(5, min=0, max=300, help="kubernetes: seconds a terminating pod keeps serving "
                                "(its preStop hook) before SIGTERM, while the Service stops sending it "
                                "connections (0: no hook)")
    predictions_claim: str | None = opt(None, pattern=IDENTIFIER, help="kubernetes PersistentVolumeClaim for the "
                                        "prediction logs, so the nightly monitor can read them (default: pod-local)")
    url: str | None = opt(None, url=True, help="kubernetes: the Service's address recorded for the deployment "
                          "(e.g. an Ingress; default: its cluster address); the guardrails read every pod instead")
    experiment: ExperimentSection | None = opt(None, help="the commit pipeline starts this live experiment "
                                               "instead of a straight deploy; the nightly one concludes it")


# The share of one CPU a shadow scorer may use by default: room for a challenger several times the cost of
# a small champion, while the server keeps the rest of the host (mlci.serve.shadow.CpuBudget).
SHADOW_CPU_SHARE = 0.25


@section
class ServeSection:
    max_body_bytes: int = opt(1_048_576, min=1024, help="largest accepted request body")
    max_rows: int = opt(1000, min=1, help="largest accepted batch")
    log_dir: str = opt("predictions", path=True, help="where the server appends prediction logs")
    log_max_bytes: int = opt(50_000_000, min=1_000_000, help="rotate a prediction log file at this size")
    log_queue_rows: int = opt(100_000, min=100,
                              help="rows buffered for the log writer; beyond it rows are dropped and counted")
    log_predictions: bool = opt(True, help="append every predicted row to the prediction log")
    unknown_categories: Literal["accept", "reject"] = opt(
        "accept", help="category values outside the schema: accept (the model ignores them; the monitor sees them) "
                       "or reject (422)")
    workers: int = opt(1, min=1, max=64, help="server processes sharing the port")
    shadow_cpu_share: float = opt(SHADOW_CPU_SHARE, min=0.01, max=1, help="largest share of one CPU the "
                                  "challenger of a shadow experiment may use, per worker; work beyond it waits, "
                                  "then is skipped and counted")


@section
class ColumnDrift:
    method: Literal["ks", "wasserstein", "psi", "chi2", "jensenshannon"] | None = opt(
        None, help="ks, wasserstein or psi for numbers; chi2, jensenshannon or psi for categories")
    threshold: float | None = opt(None, min=0, help="significance (ks, chi2) or distance limit for this column")
    ignore: bool = opt(False, help="leave this column out of drift checks")


@section
class MonitorSection:
    """Nightly drift and performance monitoring."""

    reference: str | None = opt(None, path=True, help="reference data (default: the deployed version's training data)")
    current: str | None = opt(None, path=True, help="current data file or glob (default: the server's prediction logs)")
    window: str = opt("24h", help="how far back prediction logs are read")
    labels: str | None = opt(None, path=True, help="labels arriving later: a file joined on request_id")
    sample_values: int = opt(5_000_000, min=10_000, help="numeric values kept per column and side; past this a "
                             "seeded uniform sample keeps memory bounded")
    numeric_method: Literal["auto", "ks", "wasserstein", "psi"] = opt(
        "auto", help="default test for numeric columns (auto: ks up to 10,000 rows, wasserstein above)")
    categorical_method: Literal["auto", "chi2", "jensenshannon", "psi"] = opt(
        "auto", help="default test for categories (auto: chi2 up to 10,000 rows, jensenshannon above)")
    p_value: float = opt(0.05, min=0, max=1, help="significance for statistical tests")
    correction: Literal["none", "bonferroni", "bh"] = opt("none", help="multiple-testing correction")
    wasserstein_threshold: float = opt(0.1, min=0, help="drift when the normalised Wasserstein distance reaches this")
    jensenshannon_threshold: float = opt(0.1, min=0, max=1, help="drift when the Jensen-Shannon distance reaches this")
    psi_threshold: float = opt(0.2, min=0, help="drift when the population stability index reaches this")
    drift_share: float = opt(0.5, min=0, max=1, help="dataset drift when this share of features drift")
    prediction_drift: bool = opt(True, help="test the model's output distribution (needs a model version)")
    max_missing_increase: float = opt(0.05, min=0, max=1, help="allowed rise of a column's missing share")
    max_out_of_schema: float = opt(0.01, min=0, max=1, help="allowed share of values outside the schema")
    max_metric_drop: float = opt(0.05, min=0, help="performance decay allowed against the evaluation metrics")
    columns: dict[str, ColumnDrift] = opt(dict, help="per-column overrides")
    pushgateway: str | None = opt(None, url=True, help="Pushgateway URL, e.g. http://pushgateway:9091")
    retrain_job: str | None = opt(None, pattern=IDENTIFIER, help="Jenkins job triggered when drift is found")
    schedule: str = opt("H 2 * * *", help="cron spec of the nightly Jenkins job")
    alert_error_rate: float = opt(0.05, min=0, max=1, help="alert when this share of requests fail (5xx)")
    alert_latency_p99: float = opt(0.5, min=0, help="alert when the p99 request latency exceeds this (seconds)")
    alert_stale_hours: float = opt(36.0, min=1, help="alert when the last successful monitor run is older")


@section
class JenkinsAgent:
    label: str | None = opt(None, pattern=IDENTIFIER, help="agent label")
    docker_image: str | None = opt(None, help="run the pipeline inside this image")
    docker_args: str | None = opt(None, help="extra `docker run` arguments of the docker agent, e.g. "
                                  "'-v /var/run/docker.sock:/var/run/docker.sock' or '--gpus all'")
    kubernetes_yaml: str | None = opt(None, path=True,
                                      help="pod template file for the Kubernetes plugin, relative to the project")
    default_container: str = opt("mlci", pattern=IDENTIFIER, help="container of the pod template that runs "
                                 "the steps (it needs Python 3); the plugin's default would be 'jnlp'")


@section
class ExtraStage:
    """A stage of your own, run on the same agent as the stage it is placed before or after."""

    name: str = opt(help="stage title (letters, digits, '.', '_', '-')")
    before: str | None = opt(None, help="put it before this stage: validate, train, evaluate, gate, build or push")
    after: str | None = opt(None, help="put it after this stage: validate, train, evaluate, gate, build or push")
    sh: str = opt(help="shell script, run as a single-quoted `sh` step")

    def check(self):
        if (self.before is None) == (self.after is None):
            yield (), "an extra stage needs exactly one of `before` and `after`", "e.g. `after: gate`"


@section
class Notification:
    """A message sent from the pipeline's `post` section."""

    when: Literal["always", "success", "failure", "unstable", "fixed", "regression", "aborted", "changed"] = opt(
        "failure", help="the post condition that sends it")
    slack: str | None = opt(None, help="Slack channel (Slack Notification plugin `slackSend`)")
    mail: str | None = opt(None, help="e-mail recipients (Mailer plugin `mail`)")

    def check(self):
        if (self.slack is None) == (self.mail is None):
            yield (), "a notification needs exactly one of `slack` and `mail`", "e.g. `slack: '#ml-ci'`"


@section
class JenkinsSection:
    url: str | None = opt(None, url=True, help="Jenkins URL (or JENKINS_URL); credentials only from the environment")
    job_type: Literal["multibranch", "pipeline"] = opt(
        "multibranch", help="multibranch: one job per branch and pull request (branch conditions work); "
        "pipeline: a single-branch job built by an SCM trigger")
    poll: str = opt("H/5 * * * *", help="SCM polling spec of a single-branch job; its trigger also lets "
                    "/git/notifyCommit webhooks start builds ('' for webhooks only)")
    folder: str | None = opt(None, help="folder that holds the jobs")
    job: str | None = opt(None, pattern=IDENTIFIER, help="commit job name (default: the project name)")
    scm_url: str | None = opt(None, help="git URL the jobs check out (default: the repository's origin remote)")
    scm_credentials: str | None = opt(None, pattern=IDENTIFIER, help="Jenkins credentials id for checking out scm_url")
    branch: str = opt("main", help="branch that deploys to production")
    agent: JenkinsAgent = opt(JenkinsAgent, help="where the pipeline runs")
    stage_agents: dict[str, JenkinsAgent] = opt(dict, help="another agent for a stage that needs other hardware, "
                                                "e.g. `train: {label: gpu}` (validate, train, evaluate, gate, "
                                                "build, push, deploy)")
    extra_stages: list[ExtraStage] = opt(list, help="stages of your own around the generated ones")
    notify: list[Notification] = opt(list, help="Slack or e-mail messages from the pipelines' `post` section")
    timeout_minutes: int = opt(60, min=1, help="timeout of each part of a build that holds an agent "
                               "(approvals have their own)")
    keep_builds: int = opt(30, min=1, help="builds kept by buildDiscarder")
    publish_html: bool = opt(True, help="publish HTML reports (HTML Publisher plugin)")
    install: str | None = opt(None, help="pip requirement that installs mlci on the agent: '.' (this repository), "
                              "a pinned git URL or wheel, or a version with `index_url` (no default: the build "
                              "stops with a message until it is set)")
    index_url: str | None = opt(None, help="the only package index pip may use on the agent (PIP_INDEX_URL)")
    request_timeout: float = opt(30.0, min=1, help="seconds per Jenkins API call")
    registry: RegistrySection | None = opt(None, help="the registry the Jenkins jobs use instead of `registry` "
                                           "(same fields), e.g. MLflow while a laptop keeps a local directory; "
                                           "the pipelines pass it to every step as MLCI_REGISTRY__* variables")


@section
class Config:
    """An mlci project."""

    project: str = opt(help="project name", pattern=IDENTIFIER)
    version: int = opt(1, min=1, max=1, help="config format version")
    data: DataSection = opt(help="datasets")
    model: ModelSection = opt(help="what to train")
    evaluation: EvaluationSection = opt(EvaluationSection, help="holdout evaluation")
    gates: GatesSection = opt(GatesSection, help="quality gates")
    registry: RegistrySection = opt(RegistrySection, help="the model registry: local directory or MLflow")
    image: ImageSection | None = opt(None, help="the serving image (build, push, deploy need it)")
    environments: dict[str, Environment] = opt(dict, help="deployment environments by name")
    serve: ServeSection = opt(ServeSection, help="the model server")
    monitor: MonitorSection = opt(MonitorSection, help="nightly monitoring")
    jenkins: JenkinsSection = opt(JenkinsSection, help="Jenkins jobs and pipelines")
    reports: str = opt("reports", path=True, help="directory for JSON, JUnit and HTML reports")
    tensorboard: str | None = opt(None, path=True,
                                  help="directory for TensorBoard scalars (CV folds, holdout metrics per "
                                  "version, nightly drift and performance); unset: none are written")

    def check(self):
        step_names = [step.name for step in self.model.steps] if self.model else []
        for index, name in enumerate(step_names):
            if name in ("preprocess", "model") or name in step_names[:index]:
                yield ("model", "steps", index, "name"), f"step name '{name}' is taken", \
                    "'preprocess', 'model' and earlier step names are taken"
        for name in self.environments:
            if not _is_identifier(name):
                yield ("environments", name), f"'{name}' is not a valid environment name", "letters, digits, . _ -"


# host[:port] of an image registry (a DNS name or IPv4 address, a numeric port), optionally a path.
_REGISTRY_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?(/[a-z0-9._-]+)*/?$")


def _is_identifier(text: str) -> bool:
    return re.match(IDENTIFIER, text) is not None


@dataclass
class Project:
    """A loaded config plus where it came from; resolves paths relative to the project directory."""

    config: Config
    root: Path
    config_path: Path
    document: YamlDocument = field(repr=False)

    def path(self, relative: str | os.PathLike) -> Path:
        return (self.root / relative).resolve() if not Path(relative).is_absolute() else Path(relative)

    @property
    def reports_dir(self) -> Path:
        return self.path(self.config.reports)

    @property
    def registry_dir(self) -> Path:
        return self.path(self.config.registry.path)


def load_project(project_dir: Path | None = None, config_file: Path | None = None,
                 environ: dict[str, str] | None = None) -> Project:
    root = Path(project_dir or ".").resolve()
    path = config_file if config_file else root / CONFIG_FILE
    if config_file and project_dir is None:
        root = Path(config_file).resolve().parent
    display = _display_path(Path(path))
    doc = load_yaml_file(Path(path), display_name=display)
    _apply_env_overrides(doc, os.environ if environ is None else environ)
    return Project(config=build(Config, doc), root=root, config_path=Path(path), document=doc)


def _display_path(path: Path) -> str:
    """The path relative to the working directory when it lies below it, else as absolute."""
    relative = os.path.relpath(path.resolve())
    return str(path.resolve()) if relative.startswith("..") else relative


def _with_hint(issue: ConfigIssue, hint: str) -> ConfigIssue:
    issue.hint = issue.hint or hint
    return issue


def _apply_env_overrides(doc: YamlDocument, environ: Mapping[str, str]) -> None:
    """Fold ``MLCI_SECTION__KEY=value`` variables into the parsed file, values parsed as YAML."""
    issues = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX):].split("__")]
        target = doc.data if isinstance(doc.data, dict) else {}
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                issues.append(ConfigIssue("cannot override inside a non-mapping value", file=f"${name}"))
                break
        else:
            origin = f"environment variable {name}"
            try:
                target[keys[-1]] = load_yaml_text(raw, origin).data if raw.strip() else raw
            except ConfigError as exc:
                issues += [_with_hint(issue, "quote the value, e.g. "
                                      f"{name}=\"'...'\" to pass it as text") for issue in exc.issues]
                continue
            doc.origins[tuple(keys)] = origin
    if issues:
        raise ConfigError(issues)
