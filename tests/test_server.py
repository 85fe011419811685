"""The model server: Starlette TestClient for the HTTP contract, a real uvicorn process for concurrency,
SIGTERM and the prediction log."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from mlci.serve.app import create_app
from mlci.serve.predlog import LoggedBatch, batch_lines
from mlci.serve.settings import ServeSettings
from tests.serving_support import REPO, copy_example, holdout_records, register_version

SECRET = "SECRET-VALUE-4711"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    directory = copy_example(tmp_path_factory.mktemp("serve"))
    register_version(directory)
    return directory


def _settings(project: Path, log_dir: Path | None = None, **overrides) -> ServeSettings:
    return ServeSettings(registry=project / ".mlci" / "registry", log_dir=log_dir, **overrides)


def _wait_ready(client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "server never became ready"
        time.sleep(0.05)


@pytest.fixture
def client(project, tmp_path):
    with TestClient(create_app(_settings(project, tmp_path / "log"))) as test_client:
        _wait_ready(test_client)
        yield test_client


def _post_raw(client, body: bytes, content_type: str = "application/json"):
    return client.post("/predict", content=body, headers={"content-type": content_type})


def test_predict_returns_predictions_probabilities_version_and_request_id(client, project):
    records = holdout_records(project, 4)
    answer = client.post("/predict", json={"records": records}, headers={"X-Request-ID": "req-1"})
    assert answer.status_code == 200
    body = answer.json()
    assert len(body["predictions"]) == 4 and set(body["predictions"]) <= {0, 1}
    assert body["classes"] == [0, 1]
    assert all(abs(sum(p) - 1) < 1e-5 for p in body["probabilities"])
    assert body["model_version"] == 1 and body["request_id"] == "req-1"
    assert answer.headers["x-request-id"] == "req-1"
    bare = client.post("/predict", json=records)
    assert bare.status_code == 200 and bare.json()["predictions"] == body["predictions"]


def test_schema_violations_are_422_with_field_errors_and_never_echo_values(client, project):
    good = holdout_records(project, 1)[0]
    bad = [{**good, "age": SECRET}, {**good, "credit_score": 9999, "region": ["north"]}, {**good, "surprise": SECRET},
           {k: v for k, v in good.items() if k != "loan_amount"}, {**good, "default": 1}, SECRET]
    answer = client.post("/predict", json={"records": bad})
    assert answer.status_code == 422
    errors = {(e["row"], e["field"]): e["message"] for e in answer.json()["errors"]}
    assert errors[(0, "age")] == "expected an integer"
    assert errors[(1, "credit_score")].startswith("above the maximum 850")
    assert (1, "region") in errors and (2, "surprise") in errors
    assert errors[(3, "loan_amount")] == "required field is missing or null"
    assert (4, "default") in errors and (5, None) in errors
    assert SECRET not in answer.text


def test_null_for_a_non_nullable_column_that_is_not_a_feature_is_422_but_leaving_it_out_is_fine(client, project):
    sent = holdout_records(project, 1)[0]
    assert sent["customer_id"]  # an id: checked when sent, not a model feature
    good = {k: v for k, v in sent.items() if k != "customer_id"}
    assert client.post("/predict", json=[good]).status_code == 200
    assert client.post("/predict", json=[sent]).status_code == 200
    answer = client.post("/predict", json=[good, {**good, "customer_id": None}])
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"row": 1, "field": "customer_id",
                                        "message": "required field is missing or null"}]


def test_huge_integers_are_field_errors_not_server_errors(client, project):
    good = holdout_records(project, 1)[0]
    huge = "9" * 400
    for field, message in (("income", "expected a finite number (NaN and infinity are not allowed)"),
                           ("age", "expected an integer"), ("loan_term", "expected an integer")):
        body = json.dumps([good])[:-2] + f', "{field}": {huge}}}]'
        answer = _post_raw(client, body.encode())
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["errors"] == [{"row": 0, "field": field, "message": message}]
    beyond_64_bits = client.post("/predict", json=[{**good, "num_accounts": 2 ** 63}])
    assert beyond_64_bits.json()["errors"] == [{"row": 0, "field": "num_accounts", "message": "expected an integer"}]
    # the published maximum of a float column is the largest double; a JSON integer is exact, so one
    # past it is beyond it even though rounding it to a double gives the largest one (found by the fuzzer)
    largest = int(sys.float_info.max)
    for rows in ([{**good, "income": largest + 1}], [{**good, "income": largest + 1}, good]):
        answer = _post_raw(client, json.dumps(rows).encode())
        assert answer.json()["errors"] == [{"row": 0, "field": "income", "message":
                                            "expected a finite number (NaN and infinity are not allowed)"}]


def test_datetimes_with_an_offset_are_compared_in_utc(client, project):
    good = holdout_records(project, 1)[0]
    at_the_minimum = {**good, "application_date": "2020-01-01T02:00:00+02:00"}   # 2020-01-01T00:00Z
    below = {**good, "application_date": "2020-01-01T01:59:59+02:00"}
    assert client.post("/predict", json=[at_the_minimum]).status_code == 200
    answer = client.post("/predict", json=[below])
    assert answer.json()["errors"][0]["message"] == "below the minimum 2020-01-01T00:00:00"


def test_nan_and_infinity_are_refused(client, project):
    good = holdout_records(project, 1)[0]
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = json.dumps([good])[:-2] + f', "income": {literal}}}]'
        answer = _post_raw(client, body.encode())
        assert answer.status_code == 422, literal
        assert answer.json()["errors"][0]["field"] == "income"


def test_unknown_categories_are_scored_by_default_and_refused_when_configured(client, project, tmp_path):
    record = {**holdout_records(project, 1)[0], "employment": "contractor"}
    assert client.post("/predict", json=[record]).status_code == 200
    strict = create_app(_settings(project, unknown_categories="reject"))
    with TestClient(strict) as strict_client:
        _wait_ready(strict_client)
        answer = strict_client.post("/predict", json=[record])
        assert answer.status_code == 422
        assert answer.json()["errors"] == [{"row": 0, "field": "employment",
                                            "message": "not one of the allowed values"}]


@pytest.mark.parametrize("body, content_type, status", [
    (b'{"records": []}', "application/json", 422),
    (b"[]", "application/json", 422),
    (b'{"rows": [{}]}', "application/json", 422),
    (b'"text"', "application/json", 422),
    (b"{not json", "application/json", 400),
    (b"[" * 600_000 + b"]" * 600_000, "application/json", 413),
    (b"[" * 5000 + b"]" * 5000, "application/json", 400),
    (b"age,income\n1,2", "text/csv", 415),
    (b"[{}]", "application/json; charset=latin-1", 415),
    (b"[{}]", "", 415),
], ids=["empty-records", "empty-list", "wrong-key", "not-a-batch", "invalid-json", "oversized",
        "deeply-nested", "csv", "latin-1", "no-content-type"])
def test_malformed_requests_get_4xx_never_5xx(client, body, content_type, status):
    answer = _post_raw(client, body, content_type)
    assert answer.status_code == status
    assert "errors" in answer.json() and "Traceback" not in answer.text


def test_body_and_batch_caps_are_413(project):
    settings = _settings(project, max_body_bytes=2048, max_rows=3)
    with TestClient(create_app(settings)) as small:
        _wait_ready(small)
        records = holdout_records(project, 4)
        assert small.post("/predict", json=records[:3]).status_code == 200
        assert small.post("/predict", json=records).status_code == 413  # 4 rows > max_rows
        big = json.dumps([{"customer_id": "x" * 3000}]).encode()
        answer = _post_raw(small, big)
        assert answer.status_code == 413 and "x" * 50 not in answer.text

        def chunks():  # no Content-Length: the cap applies while streaming
            for _ in range(10):
                yield b" " * 1024
        assert small.post("/predict", content=chunks(), headers={"content-type": "application/json"}).status_code == 413


def test_health_version_and_openapi(client):
    assert client.get("/health/live").json() == {"live": True}
    assert client.get("/health/ready").json() == {"ready": True, "model_version": 1}
    version = client.get("/version").json()
    assert version["model_version"] == 1 and version["git_commit"].startswith("0123456")
    assert len(version["data_sha256"]) == 64
    spec = client.get("/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    record = spec["components"]["schemas"]["Record"]
    assert record["properties"]["credit_score"] == {"type": "integer", "format": "int64", "minimum": 300,
                                                    "maximum": 850}
    assert record["properties"]["loan_term"]["enum"] == [12, 24, 36, 48, 60]
    assert record["properties"]["employment"]["examples"][0] == "salaried"
    assert "default" not in record["properties"] and "loan_amount" in record["required"]


def test_metrics_follow_prometheus_text_format(client, project):
    client.post("/predict", json=holdout_records(project, 10))
    client.post("/predict", json=[{"age": "x"}])
    text = client.get("/metrics").text
    assert 'mlci_http_requests_total{endpoint="/predict",status="200"} 1' in text
    assert 'mlci_http_requests_total{endpoint="/predict",status="422"} 1' in text
    assert "# TYPE mlci_http_request_duration_seconds histogram" in text
    assert 'mlci_http_request_duration_seconds_bucket{endpoint="/predict",le="+Inf"} 2' in text
    counted = sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("mlci_predictions_total{"))
    assert counted == 10
    assert 'mlci_model_info{data_sha256="' in text and 'version="1"} 1' in text
    assert "mlci_prediction_log_dropped_total 0" in text
    assert client.get("/nowhere").status_code == 404
    assert 'endpoint="other",status="404"' in client.get("/metrics").text


def test_prediction_log_lines_have_the_documented_format(project, tmp_path):
    log_dir = tmp_path / "log"
    records = holdout_records(project, 3)
    with TestClient(create_app(_settings(project, log_dir))) as logged:
        _wait_ready(logged)
        answer = logged.post("/predict", json={"records": records}).json()
    files = list(log_dir.iterdir())
    assert len(files) == 1
    assert files[0].name.startswith("predictions-")
    assert files[0].name.endswith(f"-{socket.gethostname()}-{os.getpid()}.jsonl")
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [line["row"] for line in lines] == [0, 1, 2]
    first = lines[0]
    assert set(first) == {"ts", "request_id", "row", "model_version", "features", "prediction", "probabilities"}
    assert first["ts"].endswith("Z") and first["request_id"] == answer["request_id"]
    assert first["model_version"] == 1 and first["prediction"] == answer["predictions"][0]
    assert first["features"]["age"] == records[0]["age"] and "customer_id" not in first["features"]
    assert first["probabilities"] == {"0": answer["probabilities"][0][0], "1": answer["probabilities"][0][1]}


def test_prediction_log_rotates_and_counts_drops_instead_of_blocking(project, tmp_path):
    log_dir = tmp_path / "log"
    records = holdout_records(project, 20)
    with TestClient(create_app(_settings(project, log_dir, log_max_bytes=4000))) as rotating:
        _wait_ready(rotating)
        for _ in range(5):
            assert rotating.post("/predict", json=records).status_code == 200
    files = sorted(log_dir.iterdir())
    assert len(files) >= 3 and len(set(f.name for f in files)) == len(files)
    assert sum(len(f.read_text().splitlines()) for f in files) == 100
    with TestClient(create_app(_settings(project, tmp_path / "tiny", log_queue_rows=10))) as tiny:
        _wait_ready(tiny)
        assert tiny.post("/predict", json=records).status_code == 200  # 20 rows > a 10-row queue
        assert "mlci_prediction_log_dropped_total 20" in tiny.get("/metrics").text


def test_a_tampered_model_is_live_but_never_ready(project, tmp_path):
    import shutil
    registry = tmp_path / "registry"
    shutil.copytree(project / ".mlci" / "registry", registry)
    with open(registry / "versions" / "v1" / "model.skops", "ab") as handle:
        handle.write(b"tampered")
    with TestClient(create_app(ServeSettings(registry=registry))) as broken:
        deadline = time.monotonic() + 10
        while "reason" not in broken.get("/health/ready").json() or \
                broken.get("/health/ready").json()["reason"] == "loading the model":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ready = broken.get("/health/ready")
        assert ready.status_code == 503 and "sha256 does not match" in ready.json()["reason"]
        assert broken.get("/health/live").status_code == 200
        assert broken.post("/predict", json=[{}]).status_code == 503


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_uvicorn_process_concurrent_requests_and_sigterm_flushes_the_log(project, tmp_path):
    port, log_dir = _free_port(), tmp_path / "log"
    command = [sys.executable, "-m", "mlci.serve", "--registry", str(project / ".mlci" / "registry"),
               "--host", "127.0.0.1", "--port", str(port), "--log-dir", str(log_dir)]
    server = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not become ready"
            time.sleep(0.1)
        good = holdout_records(project, 5)
        bodies = [json.dumps(good), json.dumps([{"age": -1}]), '{"records": [{"income": NaN}]}', "[]", "{bad"]

        def send(i: int) -> int:
            return httpx.post(f"{base}/predict", content=bodies[i % len(bodies)],
                              headers={"content-type": "application/json"}, timeout=30).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(send, range(200)))
        assert not [s for s in statuses if s >= 500]
        assert statuses.count(200) == 40
        server.send_signal(signal.SIGTERM)
        # uvicorn finishes in-flight work, runs the shutdown, then re-raises SIGTERM (recent versions)
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    rows = sum(len(f.read_text().splitlines()) for f in log_dir.iterdir())
    assert rows == 40 * 5


def test_a_malformed_environment_setting_is_a_one_line_usage_error(monkeypatch, capsys):
    from mlci.serve.__main__ import parse

    monkeypatch.setenv("MLCI_SERVE_PORT", "eighty")
    with pytest.raises(SystemExit) as exited:
        parse([])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "MLCI_SERVE_PORT='eighty' is not a valid int" in error
    assert "Traceback" not in error


def test_settings_round_trip_through_the_environment(monkeypatch, tmp_path):
    from mlci.serve.__main__ import parse

    settings = ServeSettings(registry=tmp_path / "registry", model="3", host="127.0.0.2", port=9123, check_port=9124,
                             workers=2, max_body_bytes=2048, max_rows=7, log_dir=tmp_path / "log",
                             log_max_bytes=2_000_000, log_queue_rows=64, unknown_categories="reject",
                             shadow_cpu_share=0.125)
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    assert parse([]) == settings


@pytest.mark.parametrize("share", ["0", "-0.5", "1.5"])
def test_a_shadow_cpu_share_outside_0_to_1_is_a_one_line_usage_error(monkeypatch, capsys, share):
    from mlci.serve.__main__ import parse

    monkeypatch.setenv("MLCI_SERVE_SHADOW_CPU_SHARE", share)
    with pytest.raises(SystemExit) as exited:
        parse([])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "MLCI_SERVE_SHADOW_CPU_SHARE) must be above 0 and at most 1" in error


def test_the_shadow_cpu_share_goes_from_mlci_yaml_into_every_targets_server(project, monkeypatch, tmp_path):
    """``serve.shadow_cpu_share`` reaches the local server's settings and the docker and kubernetes
    containers' environment, which ``python -m mlci.serve`` reads back."""
    import shutil

    from mlci.core.config import load_project
    from mlci.ops.deliver.settings import container_environment, serve_settings
    from mlci.serve.__main__ import parse

    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    config = copy / "mlci.yaml"
    assert "\nserve:" not in config.read_text()
    config.write_text(config.read_text() + "serve:\n  shadow_cpu_share: 0.125\n")
    settings = serve_settings(load_project(copy))
    assert settings.shadow_cpu_share == 0.125
    for name, value in container_environment(settings).items():
        monkeypatch.setenv(name, value)
    assert parse([]).shadow_cpu_share == 0.125


def _documented_lines(batch: LoggedBatch) -> str:
    """The log format by its definition: one json.dumps of each row's line object."""
    text = ""
    for row, prediction in enumerate(batch.predictions):
        line = {"ts": batch.ts, "request_id": batch.request_id, "row": row, "model_version": batch.model_version,
                "features": {name: values[row] for name, values in batch.columns.items()}, "prediction": prediction}
        if batch.probabilities is not None and batch.classes is not None:
            line["probabilities"] = dict(zip(batch.classes, batch.probabilities[row]))
        text += json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n"
    return text


@pytest.mark.parametrize("classes, probabilities, predictions", [
    (["0", "1"], [[0.25, 0.75], [1.0, 0.0], [1e-07, 0.9999999]], [1, 0, 1]),
    (["no", "yes", "no"], [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]], ["no", "yes", "no"]),
    (None, None, [1.5, -2e20, 0]),
])
def test_prediction_log_lines_equal_one_json_dumps_per_row(classes, probabilities, predictions):
    columns = {"age": [41, None, 18], "income": [1234.5, 1e16, None], "flag": [True, False, None],
               "region": ["north", "a,b", 'say "%s" 100%'], "mixed": ["x", 3, 2.5],
               "note": ["é ü \n\t", None, "\u2028"], "ünïcode name": ["", "}", "{\"ts\":"]}
    batch = LoggedBatch("2026-01-31T12:00:00.123Z", "req-%d", 7, columns, predictions, probabilities, classes)
    assert batch_lines(batch) == _documented_lines(batch)


def test_prediction_log_refuses_non_finite_values_like_json_dumps():
    batch = LoggedBatch("ts", "id", 1, {"x": [1.0]}, [0], [[float("nan"), 1.0]], ["0", "1"])
    with pytest.raises(ValueError):
        batch_lines(batch)


INTEGER_FIELD = "num_accounts"


@pytest.mark.parametrize("field", ["income", "loan_amount", "debt_ratio", INTEGER_FIELD])
@pytest.mark.parametrize("digits", [20, 40, 308, 309, 400, 4000, 5000])
@pytest.mark.parametrize("sign", ["", "-"])
def test_integers_too_large_for_a_number_column_are_422_not_500(client, project, field, digits, sign):
    """JSON integers have no size limit; the model's float64 columns do. Beyond them: a field error, never 500."""
    good = holdout_records(project, 1)[0]
    body = json.dumps([good])[:-2] + f', "{field}": {sign}{"9" * digits}}}]'
    answer = _post_raw(client, body.encode())
    if digits <= 308:  # 10**308 - 1 is still a float64: scored, or refused by the column's range rule
        assert answer.status_code in (200, 422), answer.text[:200]
        if answer.status_code == 422:  # integers are 64-bit (mlci/ml/schema_rules.py): 20 digits is not one
            assert answer.json()["errors"][0]["message"].startswith(
                ("below the minimum", "above the maximum") + (("expected an integer",
                                                               ) if field == INTEGER_FIELD else ()))
    elif digits > 4300:  # beyond what Python's JSON parser reads: the body is malformed
        assert answer.status_code in (400, 422), answer.text[:200]
    else:
        assert answer.status_code == 422, answer.text[:200]
        # beyond float64 a number is an infinity, which a `finite` float column refuses (schema_rules.py)
        expected = ("expected an integer" if field == INTEGER_FIELD
                    else "expected a finite number (NaN and infinity are not allowed)")
        assert [(e["row"], e["field"], e["message"]) for e in answer.json()["errors"]] == [(0, field, expected)]
    assert "9" * 20 not in answer.text
