"""Live experiments: ``mlci deploy --env E --shadow V | --canary V``, ``mlci experiment status|conclude``.

An experiment is a record in the challenger version's registry entry, under ``experiments``::

    {id, env, mode, champion, challenger, share, key, plan: {metric, clip, max_drop, relative, alpha,
     expected_rows, min_rows, queue_rows, guardrails}, started, status, looks: [...], result}

with status ``running``, ``promoted``, ``stopped``, ``failed`` (the server did not start) or
``superseded`` (another version was deployed to the environment meanwhile). The plan is fixed when the
experiment starts: the sequential bound is valid for a plan chosen before the data, not after.

Every server the deployer starts for the environment while the experiment runs gets it in its settings
(``experiment_settings``), so a restarted server resumes it; its rows stay in the prediction logs, marked
with the experiment id. Concluding reads both roles' rows and the labels, and decides with
``mlci.ml.sequential`` (always-valid bounds; see docs/experiments.md) and the server's own metrics.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlci.core.config import ExperimentSection, Project
from mlci.core.records import Deployment, Experiment
from mlci.core.reports import Check, Report
from mlci.errors import DataError, IntegrityError, NotFound, ServiceError, UsageError
from mlci.ops.deliver.experiment_state import (
    RUNNING,
    change_experiment,
    record_experiment,
    running_experiment,
    utc_now,
)
from mlci.ops.model.registry import open_registry

LineSink = Callable[[str], None]
TIMELINE_POINTS = 60


# -- starting -------------------------------------------------------------------------------------


def plan_for(project: Project, env_name: str, *, mode: str | None, share: float | None) -> ExperimentSection:
    """The environment's configured plan (or the defaults) with the command line's mode and share."""
    from mlci.core.spec import build
    from mlci.core.yamlsrc import YamlDocument

    env = project.config.environments[env_name]
    plan = env.experiment or build(ExperimentSection, YamlDocument(data={}, file=project.config_path.name))
    if mode:
        plan = replace(plan, mode=mode)
    if share is not None:
        if not 0 < share <= 1:
            raise UsageError(f"--share {share:g} is outside (0, 1]", hint="e.g. --share 0.1 for a tenth of requests")
        plan = replace(plan, share=share)
    return plan


def start_experiment(project: Project, *, env_name: str, challenger_ref: str | None = None,
                     mode: str | None = None, share: float | None = None, first_deploy: bool = False,
                     on_line: LineSink = lambda s: None) -> Report:
    """Serve ``challenger_ref`` beside the environment's model, health-gated like a deploy. With
    ``first_deploy`` (the pipeline's configured experiment), an environment that serves nothing yet gets
    the challenger deployed alone: there is no champion to compare with."""
    from mlci.ops.deliver.deploy import active_deployment, deploy, environment

    environment(project, env_name)
    plan = plan_for(project, env_name, mode=mode, share=share)
    registry = open_registry(project)
    current = active_deployment(registry, env_name)
    if current is None and first_deploy:
        on_line(f"experiment: nothing serves {env_name} yet, so there is no champion: deploying instead")
        return deploy(project, env_name=env_name, ref=challenger_ref or plan.challenger, on_line=on_line)
    if current is None:
        raise NotFound(f"nothing is deployed to '{env_name}': an experiment needs a champion",
                       hint=f"run `mlci deploy --env {env_name}` first")
    earlier = running_experiment(registry, env_name)
    if earlier is not None:
        raise UsageError(f"experiment {earlier.id} (challenger version {earlier.challenger}) already runs "
                         f"on '{env_name}'", hint=f"run `mlci experiment conclude --env {env_name}` first")
    challenger = registry.resolve(challenger_ref or plan.challenger)
    if challenger == current.version:
        raise UsageError(f"version {challenger} already serves '{env_name}': a challenger must be another version",
                         hint="train a new version, or name one with --shadow/--canary V")
    experiment = Experiment(id=uuid.uuid4().hex[:16], env=env_name, mode=plan.mode, champion=current.version,
                            challenger=challenger, share=plan.share if plan.mode == "canary" else None,
                            key=plan.key, plan=plan, started=utc_now(), status=RUNNING)
    record_experiment(registry, experiment)
    on_line(f"experiment: {plan.mode} of version {challenger} against version {current.version} on {env_name}")
    try:
        report = deploy(project, env_name=env_name, ref=str(current.version), kind="experiment",
                        experiment=experiment, on_line=on_line)
    except BaseException:  # refused or interrupted before a server ran it: the record must not say running
        change_experiment(registry, experiment, status="failed", ended=utc_now())
        raise
    report.details["experiment"] = experiment.id
    if not report.ok:
        change_experiment(registry, experiment, status="failed", ended=utc_now())
    return report


# -- the evidence ---------------------------------------------------------------------------------


@dataclass
class Evidence:
    """Labelled rows of one experiment, per role, in time order: (ts, score)."""

    champion: list[tuple[str, float]] = field(default_factory=list)
    challenger: list[tuple[str, float]] = field(default_factory=list)
    paired: list[tuple[str, float]] = field(default_factory=list)  # shadow: (ts, challenger - champion)
    width: float = 1.0
    logged: dict[str, int] = field(default_factory=dict)


def logged_rows(log_dir: Path, experiment_id: str) -> dict[str, dict[tuple[str, int], dict[str, Any]]]:
    """The experiment's rows in the prediction logs: role -> (request_id, row) -> line."""
    marker = f'"experiment":{json.dumps(experiment_id)}'
    rows: dict[str, dict[tuple[str, int], dict[str, Any]]] = {"champion": {}, "challenger": {}}
    for path in sorted(Path(log_dir).glob("predictions-*.jsonl")) if Path(log_dir).is_dir() else []:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for text in handle:
                if marker not in text:
                    continue
                try:
                    line = json.loads(text)
                except ValueError:
                    continue  # a line cut by a crash
                role = line.get("role")
                if role in rows:
                    rows[role][(str(line["request_id"]), int(line["row"]))] = line
    return rows


def read_labels(project: Project, labels_file: str, target: str) -> dict[tuple[str, int | None], Any]:
    """Labels by (request_id, row), or (request_id, None) when the file has no row column."""
    from mlci.ml.tabular import read_table

    path = project.path(labels_file)
    if not path.is_file():
        raise DataError(f"{labels_file}: no such labels file", hint="a CSV with request_id[, row] and the target")
    frame = read_table(path, csv=project.config.data.csv)
    if "request_id" not in frame.columns or target not in frame.columns:
        raise DataError(f"{labels_file}: a labels file needs the columns request_id and {target}",
                        hint="optionally also row, for requests with several rows")
    rows = frame["row"] if "row" in frame.columns else [None] * len(frame)
    return {(str(rid), None if row is None or row != row else int(row)): value
            for rid, row, value in zip(frame["request_id"], rows, frame[target]) if value == value}


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _scores(plan: ExperimentSection, lines: list[dict[str, Any]], labels: list[Any]) -> tuple[list[float], float]:
    import numpy as np

    from mlci.ml.sequential import row_scores

    metric = plan.metric
    if metric == "mae":
        scores, width = row_scores("mae", np.array(labels, dtype=float),
                                   np.array([line["prediction"] for line in lines], dtype=float), clip=plan.clip)
        return scores.tolist(), width
    truth = np.array([_label_text(v) for v in labels], dtype=object)
    if metric == "accuracy":
        predicted = np.array([_label_text(line["prediction"]) for line in lines], dtype=object)
        scores, width = row_scores("accuracy", truth, predicted)
        return scores.tolist(), width
    classes = sorted({c for line in lines for c in (line.get("probabilities") or {})})
    if not classes:
        raise DataError("the brier metric needs class probabilities in the prediction log",
                        hint="brier is for classifiers; use accuracy or mae")
    probabilities = np.array([[float((line.get("probabilities") or {}).get(c, 0.0)) for c in classes]
                              for line in lines])
    scores, width = row_scores("brier", truth, None, probabilities, classes)
    return scores.tolist(), width


def gather_evidence(project: Project, experiment: Experiment, labels_file: str, target: str) -> Evidence:
    rows = logged_rows(project.path(project.config.serve.log_dir), experiment.id)
    labels = read_labels(project, labels_file, target)
    evidence = Evidence(logged={role: len(found) for role, found in rows.items()})
    labelled: dict[str, list[tuple[tuple[str, int], dict[str, Any], Any]]] = {}
    for role, found in rows.items():
        labelled[role] = [(key, line, _label(labels, key)) for key, line in found.items()]
        labelled[role] = [item for item in labelled[role] if item[2] is not None]
    plan = experiment.plan
    scored: dict[str, dict[tuple[str, int], tuple[str, float]]] = {}
    for role, items in labelled.items():
        if not items:
            scored[role] = {}
            continue
        values, evidence.width = _scores(plan, [i[1] for i in items], [i[2] for i in items])
        scored[role] = {key: (line["ts"], value) for (key, line, _), value in zip(items, values)}
    evidence.champion = sorted(scored["champion"].values())
    evidence.challenger = sorted(scored["challenger"].values())
    if experiment.mode == "shadow":
        both = scored["champion"].keys() & scored["challenger"].keys()
        evidence.paired = sorted((scored["champion"][k][0], scored["challenger"][k][1] - scored["champion"][k][1])
                                 for k in both)
    return evidence


def _label(labels: dict[tuple[str, int | None], Any], key: tuple[str, int]) -> Any:
    if key in labels:
        return labels[key]
    return labels.get((key[0], None))


# -- the bound, the guardrails and the decision ------------------------------------------------------


def bound_of(experiment: Experiment, evidence: Evidence, upto: str | None = None):
    """The always-valid bound on (challenger - champion) from the rows logged up to ``upto`` (all if None)."""
    import numpy as np

    from mlci.ml.sequential import paired_bound, two_sample_bound

    plan = experiment.plan

    def keep(rows):
        return [v for t, v in rows if upto is None or t <= upto]

    if experiment.mode == "shadow":
        return paired_bound(np.array(keep(evidence.paired)), score_width=evidence.width, alpha=plan.alpha,
                            expected_rows=plan.expected_rows)
    return two_sample_bound(np.array(keep(evidence.champion)), np.array(keep(evidence.challenger)),
                            score_width=evidence.width, alpha=plan.alpha, expected_rows=plan.expected_rows)


def timeline(experiment: Experiment, evidence: Evidence) -> list[dict[str, Any]]:
    """The running estimate and its bound at up to TIMELINE_POINTS moments of the experiment."""
    stamps = sorted(t for t, _ in (evidence.paired if experiment.mode == "shadow"
                                   else evidence.champion + evidence.challenger))
    if not stamps:
        return []
    step = max(1, len(stamps) // TIMELINE_POINTS)
    points = []
    for upto in stamps[step - 1::step] + ([stamps[-1]] if len(stamps) % step else []):
        bound = bound_of(experiment, evidence, upto)
        if bound.rows:
            points.append({"ts": upto, "rows": bound.rows, "estimate": bound.estimate,
                           "lower": _finite(bound.lower), "upper": _finite(bound.upper)})
    return points


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def champion_value(evidence: Evidence) -> float | None:
    """The champion's mean score, which a relative max_drop is a fraction of (None without rows)."""
    return sum(v for _, v in evidence.champion) / len(evidence.champion) if evidence.champion else None


@dataclass
class ServerNumbers:
    """What the guardrails read from the server's /metrics: per role, batches, errors and p99 seconds.
    ``buckets`` (role -> le -> cumulative count) is what several replicas' numbers merge by; ``sources``
    names where they were read (a URL, or the pods)."""

    batches: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    p99: dict[str, float | None] = field(default_factory=dict)
    skipped_rows: float = 0.0
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # servers that went away before they were read


def read_server_numbers(url: str) -> ServerNumbers | str:
    """The experiment's metrics from one server (local and docker targets), or why they could not be read."""
    from mlci.adapters.serving_probe import http_get

    try:
        status, body = http_get(f"{url}/metrics", timeout=5)
    except OSError as exc:
        return f"{url}/metrics did not answer ({type(exc).__name__})"
    if status != 200:
        return f"{url}/metrics answered HTTP {status}"
    return merged_server_numbers({url: body.decode("utf-8", errors="replace")})


def merged_server_numbers(expositions: dict[str, str]) -> ServerNumbers:
    """The experiment's numbers over several servers' /metrics texts (source -> text), e.g. every replica
    of a Deployment: counters are summed, histogram buckets are summed per ``le``, and the p99 is taken
    from the summed buckets (as Prometheus' ``histogram_quantile(0.99, sum by (le) (rate(...)))`` does; a
    mean of the replicas' p99s would be no quantile of anything)."""
    from prometheus_client.parser import text_string_to_metric_families

    numbers = ServerNumbers(sources=sorted(expositions))
    for text in expositions.values():
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                _add_sample(numbers, sample.name, sample.labels, sample.value)
    numbers.p99 = {role: histogram_quantile(0.99, list(points.items())) for role, points in numbers.buckets.items()}
    return numbers


def _add_sample(numbers: ServerNumbers, name: str, labels: dict[str, str], value: float) -> None:
    role = labels.get("role")
    if name == "mlci_experiment_shadow_skipped_total":
        numbers.skipped_rows += value
    elif role is None:  # the guardrails look the per-role series up by role name
        return
    elif name == "mlci_experiment_batches_total":
        numbers.batches[role] = numbers.batches.get(role, 0.0) + value
    elif name == "mlci_experiment_errors_total":
        numbers.errors[role] = numbers.errors.get(role, 0.0) + value
    elif name == "mlci_experiment_scoring_seconds_bucket":
        points = numbers.buckets.setdefault(role, {})
        bound = float(labels["le"])
        points[bound] = points.get(bound, 0.0) + value


def guardrail_numbers(project: Project, env_name: str, deployment: Deployment | None,
                      experiment: Experiment) -> ServerNumbers | str:
    """The guardrails' numbers from every server of the environment: on kubernetes every ready pod of the
    experiment (a Service would show one replica per look), elsewhere the one server at the record's url."""
    if deployment is not None and deployment.target == "kubernetes":
        from mlci.ops.deliver.kubernetes import experiment_pod_metrics, unlabelled_pods_reason

        try:
            expositions, left_out = experiment_pod_metrics(project, env_name=env_name, experiment_id=experiment.id)
            unlabelled = None if expositions else unlabelled_pods_reason(project, env_name=env_name,
                                                                         experiment=experiment)
        except ServiceError as exc:  # as an unreachable url elsewhere: not read, so never a promotion
            return exc.message
        if unlabelled:
            return unlabelled
        if not expositions:
            return "no ready pod runs the experiment" + (f" ({'; '.join(left_out)})" if left_out else "")
        return replace(merged_server_numbers(expositions), left_out=left_out)
    return read_server_numbers(deployment.url) if deployment and deployment.url else "no server url"


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket that holds the quantile."""
    points = sorted(buckets)
    total = points[-1][1] if points else 0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in points:
        if count >= rank:
            if math.isinf(upper_bound):
                return lower_bound
            inside = count - lower_count
            return lower_bound + (upper_bound - lower_bound) * ((rank - lower_count) / inside if inside else 1)
        lower_bound, lower_count = upper_bound, count
    return lower_bound


def guardrail_checks(experiment: Experiment, numbers: ServerNumbers | str) -> list[Check]:
    limits = experiment.plan.guardrails
    if isinstance(numbers, str):
        # A guardrail that cannot be read never lets a promotion through: the run continues (see decide_all).
        return [Check("guardrails", True, f"not read: {numbers}", severity="warn", skipped=True)]
    batches = numbers.batches.get("challenger", 0.0)
    errors = numbers.errors.get("challenger", 0.0)
    rate = errors / (batches + errors) if batches + errors else 0.0
    checks = [Check("challenger error rate", rate <= limits.max_error_rate,
                    f"{int(errors)} of {int(batches + errors)} batches failed", value=round(rate, 6),
                    threshold=limits.max_error_rate)]
    ours, theirs = numbers.p99.get("challenger"), numbers.p99.get("champion")
    if ours is None or not theirs:
        checks.append(Check("challenger p99 latency", True, "not enough scored batches yet", skipped=True))
    else:
        ratio = ours / theirs
        checks.append(Check("challenger p99 latency", ratio <= limits.max_latency_ratio,
                            f"p99 {ours * 1000:.2f} ms against the champion's {theirs * 1000:.2f} ms",
                            value=round(ratio, 3), threshold=limits.max_latency_ratio))
    return checks


# -- status and conclude ------------------------------------------------------------------------------


def analyse(project: Project, *, env_name: str, labels_file: str | None, kind: str) -> tuple[Report, Experiment]:
    """Where the environment's running experiment stands: the bound, the guardrails and the decision."""
    from mlci.ml.sequential import decide, epsilon_of
    from mlci.ops.deliver.deploy import active_deployment, environment

    environment(project, env_name)
    registry = open_registry(project)
    experiment = running_experiment(registry, env_name)
    if experiment is None:
        raise NotFound(f"no experiment runs on '{env_name}'",
                       hint=f"start one with `mlci deploy --env {env_name} --shadow V` (or --canary V)")
    labels_file = labels_file or project.config.monitor.labels
    if not labels_file:
        raise UsageError("concluding an experiment needs labels joined on request_id",
                         hint="pass --labels FILE or set monitor.labels in mlci.yaml")
    champion_record = registry.get_version(experiment.champion)
    target = champion_record.target or (champion_record.schema or {}).get("target")
    if not target:
        raise IntegrityError(f"model version {experiment.champion} records no target column",
                             hint="retrain the champion with this release")
    evidence = gather_evidence(project, experiment, labels_file, target)
    plan = experiment.plan
    bound = bound_of(experiment, evidence)
    epsilon = epsilon_of(plan.max_drop, relative=plan.relative, champion_value=champion_value(evidence)) \
        if not plan.relative or evidence.champion else math.inf
    quality = decide(bound, epsilon=epsilon, min_rows=plan.min_rows) if math.isfinite(epsilon) else "continue"
    deployment = active_deployment(registry, env_name)
    numbers = guardrail_numbers(project, env_name, deployment, experiment)
    guardrails = guardrail_checks(experiment, numbers)
    broken = [c for c in guardrails if not c.passed]
    unread = any(c.name == "guardrails" for c in guardrails)
    decision = "stop" if broken else ("continue" if quality == "promote" and unread else quality)
    report = Report(kind=kind)
    enough = bound.rows >= plan.min_rows
    report.add(Check("labelled rows", True, f"{bound.rows} labelled rows"
                     f"{' in the smaller arm' if experiment.mode == 'canary' else ' scored by both models'}"
                     + ("" if enough else f": no decision before {plan.min_rows}"),
                     value=bound.rows, threshold=plan.min_rows, skipped=not enough))
    report.add(Check(f"{plan.metric}: challenger - champion", quality != "stop",
                     f"estimate {bound.estimate:+.4f}, always-valid {1 - plan.alpha:.0%} bound "
                     f"[{_text(bound.lower)}, {_text(bound.upper)}], ε = {epsilon:g}: {quality}",
                     value=_finite(bound.lower), threshold=0.0 - epsilon if math.isfinite(epsilon) else None))
    for check in guardrails:
        report.add(check)
    report.details = {
        "env": env_name, "experiment": experiment.id, "mode": experiment.mode,
        "champion": experiment.champion, "challenger": experiment.challenger, "share": experiment.share,
        "started": experiment.started, "plan": experiment.stored_plan, "decision": decision,
        "quality_decision": quality,
        "bound": {"estimate": bound.estimate, "lower": _finite(bound.lower), "upper": _finite(bound.upper),
                  "rows": bound.rows}, "epsilon": epsilon if math.isfinite(epsilon) else None,
        "logged_rows": evidence.logged, "labelled_rows": {"champion": len(evidence.champion),
                                                          "challenger": len(evidence.challenger)},
        "shadow_skipped_rows": numbers.skipped_rows if isinstance(numbers, ServerNumbers) else None,
        "metrics_read_from": numbers.sources if isinstance(numbers, ServerNumbers) else [],
        "metrics_left_out": numbers.left_out if isinstance(numbers, ServerNumbers) else [],
        "score_width": evidence.width, "timeline": timeline(experiment, evidence)}
    return report, experiment


def _text(value: float) -> str:
    return f"{value:+.4f}" if math.isfinite(value) else ("-inf" if value < 0 else "+inf")


def experiment_running(project: Project, *, env_name: str) -> bool:
    from mlci.ops.deliver.deploy import environment

    environment(project, env_name)
    return running_experiment(open_registry(project), env_name) is not None


def experiment_status(project: Project, *, env_name: str, labels_file: str | None = None) -> Report:
    """The running experiment's standing; nothing changes (exit 0 unless a guardrail or the bound says stop)."""
    report, _ = analyse(project, env_name=env_name, labels_file=labels_file, kind="experiment-status")
    return _finish(project, report)


def conclude_experiment(project: Project, *, env_name: str, labels_file: str | None = None,
                        on_line: LineSink = lambda s: None) -> Report:
    """Decide and act: promote (the challenger serves alone and takes the aliases), stop (the champion
    serves alone) or continue (recorded as a look). Exit 0 promote/continue, 1 stop."""
    report, experiment = analyse(project, env_name=env_name, labels_file=labels_file, kind="experiment")
    decision = report.details["decision"]
    registry = open_registry(project)
    look = {"time": utc_now(), **report.details["bound"], "decision": decision}
    experiment = change_experiment(registry, experiment, looks=(*experiment.looks, look))
    on_line(f"experiment {experiment.id}: {decision}")
    if decision == "continue":
        return _finish(project, report)
    if decision == "promote":
        _promote(project, registry, experiment, report, on_line)
    else:
        _stop(project, registry, experiment, report, on_line)
    return _finish(project, report)


def _redeploy(project: Project, experiment: Experiment, version: int, kind: str, on_line: LineSink) -> Report:
    from mlci.ops.deliver.deploy import deploy

    return deploy(project, env_name=experiment.env, ref=str(version), kind=kind, experiment=None, on_line=on_line)


def _promote(project: Project, registry, experiment: Experiment, report: Report, on_line: LineSink) -> None:
    rollout = _redeploy(project, experiment, experiment.challenger, "experiment-promote", on_line)
    report.add(Check("promote: redeploy", rollout.ok, "; ".join(c.message for c in rollout.checks if c.message)))
    report.details["redeploy"] = rollout.to_dict()
    if not rollout.ok:
        return  # the champion keeps serving with the experiment; the next look decides again
    moved = [experiment.env]
    champion_alias = project.config.gates.champion
    if champion_alias != experiment.env and registry.alias_of(champion_alias) == experiment.champion:
        registry.set_alias(champion_alias, experiment.challenger)
        moved.append(champion_alias)
    change_experiment(registry, experiment, status="promoted", ended=utc_now(), result=_result(report, moved))
    report.details["aliases_moved"] = moved


def _stop(project: Project, registry, experiment: Experiment, report: Report, on_line: LineSink) -> None:
    rollout = _redeploy(project, experiment, experiment.champion, "experiment-stop", on_line)
    report.add(Check("stop: redeploy the champion", rollout.ok,
                     "; ".join(c.message for c in rollout.checks if c.message)))
    report.details["redeploy"] = rollout.to_dict()
    if rollout.ok:
        change_experiment(registry, experiment, status="stopped", ended=utc_now(), result=_result(report, []))


def _result(report: Report, aliases: list[str]) -> dict[str, Any]:
    details = report.details
    return {"decision": details["decision"], "bound": details["bound"], "epsilon": details["epsilon"],
            "labelled_rows": details["labelled_rows"], "aliases_moved": aliases,
            "checks": [c.to_dict() for c in report.checks]}


def _finish(project: Project, report: Report) -> Report:
    from mlci.core.reports import write_report
    from mlci.ops.deliver.experiment_report import experiment_page

    directory = project.reports_dir
    html = experiment_page(report, directory)
    write_report(report, directory, html=html)
    return report
