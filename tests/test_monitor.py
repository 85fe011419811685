"""``mlci monitor`` end to end on the bundled example, with a real Pushgateway where metrics are pushed."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlci.cli.main import run
from tests.private_pushgateway import private_pushgateway  # noqa: F401 - fixture
from tests.services import pushgateway  # noqa: F401  (fixture)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "credit-risk"
SHIFTED = {"income", "debt_ratio", "region", "employment"}
UNSHIFTED = {"age", "loan_amount", "loan_term", "credit_score", "home_ownership", "has_guarantor"}


@pytest.fixture
def project(tmp_path) -> Path:
    """A private copy of the example, renamed so parallel runs do not share Pushgateway groups."""
    root = tmp_path / "credit-risk"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("reports", ".mlci", "predictions"))
    config = root / "mlci.yaml"
    config.write_text(config.read_text().replace("project: credit-risk", f"project: mon-{uuid.uuid4().hex[:10]}"))
    return root


def monitor(project: Path, *args: str, capsys=None) -> tuple[int, dict]:
    code = run(["-C", str(project), "--json", "monitor", "--no-plots", *args])
    report = json.loads((project / "reports" / "monitor.json").read_text())
    return code, report


def drifted(report: dict) -> set[str]:
    return {c["column"] for c in report["checks"] if c["group"] == "drift" and not c["passed"]}


def test_later_data_drifts_and_exits_1_with_all_reports(project, capsys):
    code = run(["-C", str(project), "--json", "monitor", "--reference", "data/train.csv"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["details"]["retrain"] is True and out["details"]["retrain_job"] == "credit-risk"
    assert SHIFTED <= drifted(out) and not drifted(out) & UNSHIFTED
    employment = next(c for c in out["checks"] if c["name"] == "drift: employment")
    assert employment["details"]["new_categories"].keys() == {"contractor"}
    # scores are recorded for every feature, drifted or not
    assert all(isinstance(c["details"]["score"], float) for c in out["checks"] if c["group"] == "drift")
    reports = project / "reports"
    junit = ET.parse(reports / "monitor.junit.xml").getroot()
    cases = {case.get("name"): case for case in junit.iter("testcase")}
    assert {f"drift: {f}" for f in SHIFTED | UNSHIFTED} <= cases.keys()
    assert cases["dataset drift"].find("failure") is not None
    assert cases["drift: age"].find("failure") is None
    html = (reports / "monitor.html").read_text()
    assert html.count("<svg") >= len(SHIFTED | UNSHIFTED) and "contractor" in html


def test_training_data_against_itself_exits_0(project):
    code, report = monitor(project, "--reference", "data/train.csv", "--current", "data/train.csv")
    assert code == 0
    assert drifted(report) == set() and report["details"]["retrain"] is False
    assert report["details"]["drifted_share"] == 0


def test_no_reference_and_no_model_version_is_a_usage_error(project, capsys):
    assert run(["-C", str(project), "monitor"]) == 2
    assert "--reference" in capsys.readouterr().err


def test_per_column_method_and_threshold_overrides(project):
    config = project / "mlci.yaml"
    config.write_text(config.read_text().replace(
        "\nmonitor:\n", "\nmonitor:\n  columns:\n    income: {method: psi, threshold: 5.0}\n"
        "    region: {ignore: true}\n"))
    _, report = monitor(project, "--reference", "data/train.csv")
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["drift: income"]["details"]["method"] == "psi" and checks["drift: income"]["passed"]
    assert "drift: region" not in checks


def write_prediction_log(project: Path, frame: pd.DataFrame, ts: datetime, name: str) -> None:
    log_dir = project / "predictions"
    log_dir.mkdir(exist_ok=True)
    stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    features = frame.drop(columns=["customer_id", "default"])
    with (log_dir / name).open("a") as handle:
        for i, row in enumerate(features.to_dict(orient="records")):
            row = {k: (None if pd.isna(v) else v) for k, v in row.items()}
            handle.write(json.dumps({"ts": stamp, "request_id": f"r{i // 10}", "row": i % 10,
                                     "model_version": 1, "features": row, "prediction": 0,
                                     "probabilities": {"0": 0.8, "1": 0.2}}) + "\n")
        handle.write('{"ts": "torn line')


def without_current(project: Path) -> None:
    config = project / "mlci.yaml"
    config.write_text(re.sub(r"\n  current: .*", "", config.read_text()))


def test_prediction_logs_in_the_window_are_the_current_data(project):
    without_current(project)
    now = datetime.now(UTC)
    write_prediction_log(project, pd.read_csv(project / "data" / "later.csv"), now - timedelta(hours=1),
                         "predictions-new.jsonl")
    write_prediction_log(project, pd.read_csv(project / "data" / "train.csv"), now - timedelta(days=3),
                         "predictions-new.jsonl")  # older than the window: ignored
    code, report = monitor(project, "--reference", "data/train.csv", "--since", "24h")
    assert code == 1
    assert report["details"]["rows"]["current"] == 3000
    assert report["details"]["current"]["skipped_lines"] == 2
    assert SHIFTED <= drifted(report)


def test_a_bad_since_is_a_usage_error_naming_the_option(project, capsys):
    without_current(project)
    code = run(["-C", str(project), "monitor", "--reference", "data/train.csv", "--since", "3x"])
    assert code == 2
    assert "--since: '3x' is not a time span" in capsys.readouterr().err


def test_no_prediction_logs_is_a_data_source_failure_with_a_report(project, capsys):
    without_current(project)
    code, report = monitor(project, "--reference", "data/train.csv")
    assert code == 3
    assert report["checks"][0]["name"] == "data source" and not report["checks"][0]["passed"]
    assert (project / "reports" / "monitor.html").exists()
    assert "no prediction logs" in capsys.readouterr().err


def gateway_group(url: str, project_name: str) -> dict | None:
    with urllib.request.urlopen(f"{url}/api/v1/metrics", timeout=5) as response:
        groups = json.loads(response.read())["data"]
    return next((g for g in groups if g["labels"].get("project") == project_name), None)


def samples(group: dict, name: str) -> dict[tuple, float]:
    return {tuple(sorted(m["labels"].items())): float(m["value"]) for m in group[name]["metrics"]}


def project_name(project: Path) -> str:
    return re.search(r"project: (\S+)", (project / "mlci.yaml").read_text()).group(1)


def delete_group(url: str, name: str) -> None:
    request = urllib.request.Request(f"{url}/metrics/job/mlci_monitor/project/{name}", method="DELETE")
    urllib.request.urlopen(request, timeout=5).read()


def test_metrics_round_trip_through_a_real_pushgateway(project, pushgateway):
    name = project_name(project)
    try:
        before = time.time()
        code, report = monitor(project, "--reference", "data/train.csv", "--pushgateway", pushgateway)
        assert code == 1 and report["details"]["pushgateway"]["pushed"] is True
        group = gateway_group(pushgateway, name)
        assert group["labels"] == {"job": "mlci_monitor", "project": name}
        assert {dict(k)["model_version"] for k in samples(group, "mlci_drift_detected")} == {"none"}
        detected = {dict(k)["feature"]: v for k, v in samples(group, "mlci_drift_detected").items()}
        assert detected["income"] == 1.0 and detected["age"] == 0.0
        scores = {dict(k)["feature"]: (dict(k)["method"], v) for k, v in samples(group, "mlci_drift_score").items()}
        assert scores["income"][0] == "ks" and scores["income"][1] < 1e-10
        assert scores["region"][0] == "chi2"
        share = next(iter(samples(group, "mlci_drifted_feature_share").values()))
        assert share == pytest.approx(report["details"]["drifted_share"])
        missing = {dict(k)["feature"]: v for k, v in samples(group, "mlci_data_missing_ratio").items()}
        assert missing["income"] == pytest.approx(report["details"]["quality"]["income"]["missing_ratio"])
        assert "mlci_data_out_of_schema_ratio" in group
        last = next(iter(samples(group, "mlci_monitor_last_success_timestamp_seconds").values()))
        assert before <= last <= time.time()
    finally:
        delete_group(pushgateway, name)


def test_pushgateway_down_exits_3_and_still_writes_the_reports(project, capsys):
    code, report = monitor(project, "--reference", "data/train.csv", "--pushgateway",
                           "http://user:s3cret@127.0.0.1:9/?token=abc")
    err = capsys.readouterr().err
    assert code == 3
    assert "unreachable" in report["details"]["pushgateway"]["error"]
    assert (project / "reports" / "monitor.html").exists()
    assert (project / "reports" / "monitor.junit.xml").exists()
    assert "Pushgateway" in err and "s3cret" not in err and "token" not in err
    assert "s3cret" not in (project / "reports" / "monitor.json").read_text()


def test_last_success_is_pushed_only_after_the_metrics_were_accepted(project, private_pushgateway):
    pushgateway = private_pushgateway  # the blocker's counter type must not reach other tests' gateway
    name = project_name(project)
    blocker = f"{pushgateway}/metrics/job/mlci_monitor_blocker_{uuid.uuid4().hex[:8]}"
    try:
        # Another group holds mlci_drift_score as a counter: the gateway refuses our gauges (HTTP 400).
        body = b"# TYPE mlci_drift_score counter\nmlci_drift_score 1\n"
        urllib.request.urlopen(urllib.request.Request(blocker, data=body, method="POST"), timeout=5).read()
        code, report = monitor(project, "--reference", "data/train.csv", "--pushgateway", pushgateway)
        assert code == 3 and "HTTP 400" in report["details"]["pushgateway"]["error"]
        assert report["details"]["pushgateway"]["pushed"] is False
        group = gateway_group(pushgateway, name) or {}  # the gateway may keep a record of the failed push
        assert group.get("last_push_successful") in (None, False)
        assert "mlci_drift_score" not in group and "mlci_monitor_last_success_timestamp_seconds" not in group
    finally:
        urllib.request.urlopen(urllib.request.Request(blocker, method="DELETE"), timeout=5).read()
    try:
        code, _ = monitor(project, "--reference", "data/train.csv", "--pushgateway", pushgateway)
        assert code == 1
        assert "mlci_monitor_last_success_timestamp_seconds" in gateway_group(pushgateway, name)
    finally:
        delete_group(pushgateway, name)


# -- a registered model version: reference from its lineage, prediction drift, performance ------------


@pytest.fixture(scope="module")
def versioned(tmp_path_factory) -> Path:
    """A small binary project with one trained, registered and evaluated model version."""
    from tests.model_projects import write_project

    root = write_project(tmp_path_factory.mktemp("versioned") / "p", rows=600, holdout_rows=300)
    assert run(["-C", str(root), "train"]) == 0
    assert run(["-C", str(root), "evaluate"]) == 0  # records the holdout metrics performance compares with
    return root


def test_reference_comes_from_the_versions_lineage_with_prediction_drift_and_performance(versioned):
    code, report = monitor(versioned, "--current", "data/holdout.csv")
    assert report["details"]["model_version"] == 1
    assert [Path(p).name for p in report["details"]["reference"]["files"]] == ["train.csv"]
    assert report["details"]["rows"] == {"reference": 600, "current": 300}
    prediction = next(c for c in report["checks"] if c["name"] == "prediction drift")
    assert not prediction.get("skipped") and prediction["details"]["method"] in ("ks", "wasserstein")
    performance = report["details"]["performance"]
    assert performance["rows"] == 300
    assert performance["current"]["accuracy"] == pytest.approx(performance["reference"]["accuracy"])
    assert {c["name"] for c in report["checks"] if c["group"] == "performance"} >= {"performance: accuracy"}
    assert code == (0 if report["ok"] else 1)


def test_a_changed_reference_in_the_registry_is_refused(versioned, capsys, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(versioned, root)
    shutil.rmtree(root / ".mlci/references", ignore_errors=True)  # a verified cached copy would be used as is
    stored = root / ".mlci/registry/versions/v1/reference.csv"
    stored.write_text(stored.read_text() + stored.read_text().splitlines()[1] + "\n")  # one row repeated
    assert run(["-C", str(root), "monitor", "--current", "data/holdout.csv"]) == 1
    err = capsys.readouterr().err
    assert "sha256" in err and "reference.csv" in err and "Traceback" not in err


def test_changed_training_data_is_refused_for_a_version_without_a_stored_reference(versioned, capsys, tmp_path):
    from mlci.adapters.registry_store import ModelRegistry

    root = tmp_path / "p"
    shutil.copytree(versioned, root)
    ModelRegistry(root / ".mlci/registry").update(1, lambda r: r["artifacts"].pop("reference.csv"))  # older version
    train = root / "data" / "train.csv"
    train.write_text(train.read_text() + train.read_text().splitlines()[1] + "\n")  # one row repeated
    assert run(["-C", str(root), "monitor", "--current", "data/holdout.csv"]) == 1
    err = capsys.readouterr().err
    assert "sha256" in err and "train.csv" in err and "Traceback" not in err


def test_labels_arriving_later_are_joined_to_the_logged_predictions(versioned, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(versioned, root)
    holdout = pd.read_csv(root / "data" / "holdout.csv")
    stamp = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    (root / "predictions").mkdir()
    with (root / "predictions" / "predictions-a.jsonl").open("w") as handle:
        for i, row in enumerate(holdout.drop(columns=["customer_id", "default"]).to_dict(orient="records")):
            label = int(holdout["default"].iloc[i])  # a perfect model: any misaligned label lowers accuracy
            row = {k: (None if pd.isna(v) else v) for k, v in row.items()}
            handle.write(json.dumps({"ts": stamp, "request_id": f"r{i // 3}", "row": i % 3, "features": row,
                                     "prediction": label, "probabilities": {"0": 1.0 - label, "1": float(label)}})
                         + "\n")
    labelled = [i for i in range(len(holdout)) if (i // 3) % 2 == 0]  # labels for every other request
    feedback = pd.DataFrame({"request_id": [f"r{i // 3}" for i in labelled], "row": [i % 3 for i in labelled],
                             "default": holdout["default"].iloc[labelled].to_numpy()})
    feedback.sample(frac=1, random_state=3).to_csv(root / "feedback.csv", index=False)
    config = root / "mlci.yaml"
    config.write_text(config.read_text() + "serve: {log_dir: predictions}\n")
    _, report = monitor(root, "--since", "24h", "--labels", "feedback.csv")
    assert report["details"]["rows"]["current"] == len(holdout)
    performance = report["details"]["performance"]
    assert performance["rows"] == len(labelled)
    assert performance["current"]["accuracy"] == 1.0


def test_parquet_read_column_by_column_scores_like_csv_read_by_rows(project):
    for name in ("train", "later"):
        pd.read_csv(project / "data" / f"{name}.csv").to_parquet(project / "data" / f"{name}.parquet")
    _, from_csv = monitor(project, "--reference", "data/train.csv", "--current", "data/later.csv")
    _, from_parquet = monitor(project, "--reference", "data/train.parquet", "--current", "data/later.parquet")
    assert from_parquet["details"]["rows"] == from_csv["details"]["rows"]
    scores = {c["name"]: c["details"]["score"] for c in from_csv["checks"] if c["group"] == "drift"}
    assert {c["name"]: pytest.approx(c["details"]["score"], rel=1e-9)
            for c in from_parquet["checks"] if c["group"] == "drift"} == scores
    assert from_parquet["details"]["quality"] == from_csv["details"]["quality"]


def test_labels_with_current_files_is_a_usage_error(versioned, capsys):
    code = run(["-C", str(versioned), "monitor", "--current", "data/holdout.csv", "--labels", "data/holdout.csv"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--labels joins labels to the server's prediction logs" in err and "Traceback" not in err


def test_the_newest_readable_deployment_picks_the_version_and_a_half_written_entry_is_skipped(project):
    """Without a production alias the nightly monitor watches the version deployed last. An entry another
    tool wrote in part (not an object, or without the fields of a deployment) is skipped, even when it
    carries a later time: it neither stops the monitor nor picks the version."""
    from mlci.adapters.registry_store import ModelRegistry
    from mlci.core.config import load_project
    from mlci.ops.monitor.sources import deployed_version

    fixture = Path(__file__).parent / "fixtures" / "registry-format2"  # newest deployment: v1 on laptop
    registry = ModelRegistry(project / ".mlci" / "registry")
    shutil.copytree(fixture, registry.root)
    assert deployed_version(load_project(project), None).version == 1
    half_written = ["not an entry", {"id": "other-tool", "time": "2027-01-01T00:00:00Z"}]
    registry.update(2, lambda record: record["deployments"].extend(half_written))
    picked = deployed_version(load_project(project), None)
    assert picked.version == 1 and picked.active_deployment("laptop").time == "2026-12-01T03:23:49Z"


def test_a_version_without_a_stored_reference_is_compared_with_its_verified_training_file(tmp_path):
    """Versions registered before references were stored (release 0.1.0) take the training file their
    lineage names: missing is a data error, changed since training an integrity error, unchanged the
    reference, each naming the file."""
    import hashlib

    from mlci.core.config import load_project
    from mlci.core.records import ModelVersion
    from mlci.errors import DataError, IntegrityError
    from mlci.ops.monitor.sources import reference_source_for
    from tests.serving_support import copy_example

    project = load_project(copy_example(tmp_path))
    fixture = Path(__file__).parent / "fixtures" / "registry-0.1.0" / "versions" / "v1" / "version.json"
    stored = json.loads(fixture.read_text())
    stored["data"]["train"]["path"] = "data/moved.csv"
    training_file = project.path("data/moved.csv")

    with pytest.raises(DataError, match=r"moved\.csv: the training data of model version 1 is missing"):
        reference_source_for(project, ModelVersion.from_dict(stored), None)

    training_file.write_text("a,b\n1,2\n")
    with pytest.raises(IntegrityError, match=r"moved\.csv: sha256 differs from the one recorded by model version 1"):
        reference_source_for(project, ModelVersion.from_dict(stored), None)

    stored["data"]["train"]["sha256"] = hashlib.sha256(training_file.read_bytes()).hexdigest()
    source = reference_source_for(project, ModelVersion.from_dict(stored), None)
    assert source.files == [training_file] and source.label == "data/moved.csv"
