"""The loop the project exists for: the server logs its predictions, and `mlci monitor` reads those logs.

The server and the monitor are built separately; this test holds them to the same log contract.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlci.cli.main import run
from mlci.serve.app import create_app
from mlci.serve.settings import ServeSettings
from tests.serving_support import copy_example, register_version


def without_current_file(project: Path) -> None:
    """The example monitors data/later.csv; drop that so the monitor reads the server's logs."""
    config = project / "mlci.yaml"
    config.write_text("".join(line for line in config.read_text().splitlines(keepends=True)
                              if not line.strip().startswith("current:")))


def serve_rows(project: Path, csv: str, rows: int) -> None:
    frame = pd.read_csv(project / "data" / csv, nrows=rows).drop(columns=["default"])
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    settings = ServeSettings(registry=project / ".mlci" / "registry", log_dir=project / "predictions")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 30
        while client.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.05)
        for start in range(0, len(records), 100):
            answer = client.post("/predict", json={"records": records[start:start + 100]})
            assert answer.status_code == 200


def monitor_from_logs(project: Path, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = run(["--json", "-C", str(project), "monitor", "--since", "1h"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def project(tmp_path) -> Path:
    directory = copy_example(tmp_path)
    without_current_file(directory)
    register_version(directory)
    return directory


def test_logged_predictions_like_the_training_data_show_no_drift(project, capsys):
    serve_rows(project, "holdout.csv", 1000)
    code, report = monitor_from_logs(project, capsys)
    assert report["details"]["rows"]["current"] == 1000
    assert code == 0, [c["name"] for c in report["checks"] if c["status"] == "fail"]


def test_logged_predictions_of_drifted_data_fail_and_ask_for_retraining(project, capsys):
    serve_rows(project, "later.csv", 1000)
    code, report = monitor_from_logs(project, capsys)
    assert code == 1
    assert report["details"]["rows"]["current"] == 1000
    flagged = {c["name"].removeprefix("drift: ") for c in report["checks"] if c["group"] == "drift" and not c["passed"]}
    assert {"income", "region", "employment"} <= flagged, flagged
    assert report["details"]["retrain"] is True
