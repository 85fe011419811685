"""The MLflow backend against a real tracking server: what MLflow users see, faults (server down, 500s,
a failure mid-registration), credentials kept out of output, and eight concurrent trainings."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlci.adapters.model_files import MODEL_FILE, load_model
from mlci.core.config import load_project
from mlci.ops.model.registry import open_registry
from tests.registry_backends import Backend

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def mlflow_backend(mlflow_server, tmp_path) -> Backend:
    return Backend("mlflow", tmp_path, mlflow_server)


class FaultProxy:
    """A forwarding HTTP proxy in front of the MLflow server that answers 500 to requests whose path
    contains ``fail_on`` (every request when it is ""), so a fault can hit one step of a registration."""

    def __init__(self, upstream: str, fail_on: str | None, status: int = 500) -> None:
        target = urllib.parse.urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.fail_on is not None and proxy.fail_on in self.path:
                    proxy.failed += 1
                    if proxy.status == 0:  # hang: answer nothing until the client gives up
                        time.sleep(30)
                        return
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "21")
                    self.end_headers()
                    self.wfile.write(b"internal server error")
                    return
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, *args) -> None:
                pass

        self.fail_on = fail_on
        self.status = status
        self.failed = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(mlflow_server):
    proxies: list[FaultProxy] = []

    def make(fail_on: str | None, status: int = 500) -> FaultProxy:
        proxies.append(FaultProxy(mlflow_server, fail_on, status))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _point_at(root: Path, uri: str) -> None:
    config = (root / "mlci.yaml").read_text()
    start = config.index("tracking_uri: ") + len("tracking_uri: ")
    end = config.index("\n", start)
    (root / "mlci.yaml").write_text(config[:start] + uri + config[end:])


def test_mlflow_users_see_run_lineage_inputs_and_a_loadable_sklearn_model(mlflow_backend, tmp_path, run_cli):
    from mlflow import MlflowClient

    root = mlflow_backend.project(tmp_path / "proj")
    code, _, err = run_cli("-C", root, "train")
    assert code == 0, err
    client = MlflowClient(tracking_uri=mlflow_backend.mlflow_url)
    mv = client.get_model_version(mlflow_backend.model_name, "1")
    record = open_registry(load_project(root)).get(1)
    assert mv.tags["mlci.sha256." + MODEL_FILE] == record["artifacts"][MODEL_FILE]["sha256"]
    assert mv.tags["mlci.data.train.sha256"] == record["data"]["train"]["sha256"]
    run = client.get_run(mv.run_id)
    assert run.info.status == "FINISHED"
    code, out, _ = run_cli("-C", root, "--json", "train")  # stdout holds the result and nothing else
    assert code == 0 and json.loads(out)["version"] == 2
    assert run.data.params["model.max_iter"] == "500" and run.data.params["estimator"].endswith("LogisticRegression")
    assert run.data.metrics["cv_roc_auc_mean"] == pytest.approx(record["cv"]["roc_auc"]["mean"])
    assert run.data.tags["mlci.schema.sha256"] == record["schema_sha256"]
    assert run.data.tags["mlci.library.scikit-learn"] == record["libraries"]["scikit-learn"]
    digests = {d.dataset.digest: d.dataset for d in run.inputs.dataset_inputs}
    assert record["data"]["train"]["sha256"][:32] in digests
    assert json.loads(digests[record["data"]["train"]["sha256"][:32]].profile)["sha256"] == \
        record["data"]["train"]["sha256"]
    assert run_cli("-C", root, "evaluate", "--model", "1")[0] == 0
    metrics = client.get_run(mv.run_id).data.metrics
    assert metrics["holdout_roc_auc"] == pytest.approx(open_registry(load_project(root)).get(1)["metrics"]["roc_auc"])
    # What MLflow users do: load the version through MLflow's own sklearn flavour (the skops bytes mlci verified).
    import mlflow.sklearn

    mlflow.set_tracking_uri(mlflow_backend.mlflow_url)
    try:
        served = mlflow.sklearn.load_model(f"models:/{mlflow_backend.model_name}/1")
    except TypeError as exc:  # an MLflow without skops support in its sklearn flavour
        pytest.fail(f"MLflow cannot load the logged skops model: {exc}")
    ours = load_model(open_registry(load_project(root)).read_artifact(1, MODEL_FILE))
    import pandas as pd

    frame = pd.read_csv(root / "data/holdout.csv").head(20)
    features = record["features"]
    assert (served.predict_proba(frame[features]) == ours.predict_proba(frame[features])).all()


def test_server_down_is_exit_3_in_one_line_naming_the_server(mlflow_backend, tmp_path, run_cli):
    root = mlflow_backend.project(tmp_path / "proj")
    _point_at(root, f"http://alice:s3cret-pw@127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    for args in (("registry", "list"), ("train",)):
        code, out, err = run_cli("-C", root, *args)
        assert code == 3, err
        errors = [line for line in err.splitlines() if line.startswith("mlci: error:")]
        assert len(errors) == 1 and errors[0].startswith("mlci: error: MLflow server http://127.0.0.1:"), err
        assert "Traceback" not in err
        assert "s3cret-pw" not in err + out and "alice" not in err + out
    assert time.monotonic() - started < 60


def test_a_server_answering_500_is_exit_3_and_credentials_stay_secret(mlflow_backend, fault_proxy, tmp_path,
                                                                      run_cli, monkeypatch):
    proxy = fault_proxy("")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw-never-shown")
    root = mlflow_backend.project(tmp_path / "proj")
    _point_at(root, proxy.url)
    code, out, err = run_cli("-C", root, "train")
    assert code == 3 and proxy.failed >= 1
    errors = [line for line in err.splitlines() if line.startswith("mlci: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"mlci: error: MLflow server {proxy.url}"), err
    assert "Traceback" not in err
    assert "pw-never-shown" not in out + err
    for log in (root / ".mlci").rglob("*.log") if (root / ".mlci").exists() else []:
        assert "pw-never-shown" not in log.read_text(errors="replace")


def test_refused_credentials_are_exit_3_with_a_hint_and_never_shown(mlflow_backend, fault_proxy, tmp_path,
                                                                   run_cli, monkeypatch):
    proxy = fault_proxy("", status=401)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-never-shown")
    root = mlflow_backend.project(tmp_path / "proj")
    _point_at(root, proxy.url)
    code, out, err = run_cli("-C", root, "registry", "list")
    assert code == 3, err
    assert f"mlci: error: MLflow server {proxy.url}: cannot read the registered model: authentication failed" in err
    assert "MLFLOW_TRACKING_TOKEN" in err and "tok-never-shown" not in out + err


def test_a_server_that_does_not_answer_times_out_within_the_bounded_wait(mlflow_backend, fault_proxy, tmp_path,
                                                                          run_cli, monkeypatch):
    proxy = fault_proxy("", status=0)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    root = mlflow_backend.project(tmp_path / "proj")
    _point_at(root, proxy.url)
    started = time.monotonic()
    code, _, err = run_cli("-C", root, "registry", "list")
    assert code == 3 and f"mlci: error: MLflow server {proxy.url}: cannot read the registered model: timed out" in err
    assert time.monotonic() - started < 40  # unbounded, the client would wait 120 s per try


@pytest.mark.parametrize("step", ["model-versions/set-tag", "model-versions/create", "mlflow-artifacts/artifacts"])
def test_a_failure_mid_registration_leaves_no_version_visible(step, mlflow_backend, fault_proxy, tmp_path,
                                                              run_cli, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    root = mlflow_backend.project(tmp_path / "proj")
    code, _, err = run_cli("-C", root, "train")
    assert code == 0, err
    proxy = fault_proxy(step)
    _point_at(root, proxy.url)
    code, _, err = run_cli("-C", root, "train")
    assert code == 3 and proxy.failed >= 1, err
    _point_at(root, mlflow_backend.mlflow_url)
    registry = open_registry(load_project(root))
    assert [r["version"] for r in registry.versions()] == [1]
    assert registry.resolve("latest") == 1
    code, out, _ = run_cli("-C", root, "--json", "registry", "list")
    assert [v["version"] for v in json.loads(out)["versions"]] == [1]
    code, _, err = run_cli("-C", root, "train")  # the next training is unaffected
    assert code == 0, err
    assert [r["version"] for r in open_registry(load_project(root)).versions()][-1] >= 2


def test_eight_concurrent_trainings_give_eight_distinct_loadable_versions(mlflow_backend, tmp_path):
    root = mlflow_backend.project(tmp_path / "proj", rows=160, holdout_rows=80)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [subprocess.Popen([sys.executable, "-m", "mlci", "-C", str(root), "--json", "train"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [p.communicate(timeout=600) + (p.returncode,) for p in processes]
    assert all(code == 0 for _, _, code in results), [err[-500:] for _, err, code in results if code]
    registry = open_registry(load_project(root))
    versions = [r["version"] for r in registry.versions()]
    assert len(versions) == 8 and len(set(versions)) == 8
    reported = sorted(json.loads(out)["version"] for out, _, _ in results)
    assert reported == sorted(versions)
    for number in versions:
        assert hasattr(load_model(registry.read_artifact(number, MODEL_FILE)), "predict")
