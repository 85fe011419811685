"""`mlci build` and `mlci push` against the real Docker engine and the real registry."""

from __future__ import annotations

import ast
import http.server
import json
import threading

import pytest

from mlci.core.config import load_project
from mlci.ops.deliver.health import free_port
from mlci.ops.deliver.image import OPTIONAL_PACKAGES, RUNTIME_PACKAGES
from mlci.ops.model.registry import open_registry
from tests.services import http_get, registry_catalog
from tests.serving_support import (
    MLCI_PIPELINES,
    configure_delivery,
    copy_example,
    holdout_records,
    pipeline_frame,
    register_version,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def built(tmp_path_factory, docker_engine, image_registry, base_image):
    """One project whose version 1 is built (the first build of a session fills the layer cache)."""
    from mlci.cli.main import run

    directory = copy_example(tmp_path_factory.mktemp("image"))
    repository = configure_delivery(directory, registry=image_registry, base_image=base_image,
                                    ports=(free_port(), free_port()))
    register_version(directory)
    assert run(["-C", str(directory), "build"]) == 0
    yield directory, repository
    for image in docker_engine.images.list(name=repository):
        docker_engine.images.remove(image.id, force=True)


def _record(directory, version="latest"):
    return open_registry(load_project(directory)).get(version)


def test_image_has_labels_non_root_user_healthcheck_and_exec_entrypoint(built, docker_engine):
    directory, repository = built
    record = _record(directory, 1)
    assert record["image"]["tags"] == ["v1", "git-0123456789ab"]
    image = docker_engine.images.get(f"{repository}:v1")
    assert f"{repository}:git-0123456789ab" in image.tags and image.id == record["image"]["id"]
    config = image.attrs["Config"]
    labels = config["Labels"]
    assert labels["org.mlci.model.version"] == "1"
    assert labels["org.opencontainers.image.revision"] == record["git"]["commit"]
    assert labels["org.mlci.data.sha256"] == record["data"]["train"]["sha256"]
    assert labels["org.mlci.model.sha256"] == record["artifacts"]["model.skops"]["sha256"]
    assert config["User"] == "10001"
    assert config["Entrypoint"] == ["python", "-m", "mlci.serve"]
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "mlci.serve.healthcheck"]
    history = docker_engine.api.history(image.id)
    created_by = [layer["CreatedBy"] for layer in history]
    model_copy = next(i for i, text in enumerate(created_by) if "/app/registry/" in text)
    assert all(layer["Size"] == 0 for layer in history[:model_copy]), "only metadata after the model layer"


def test_the_image_holds_no_build_tools_or_wheelhouse_and_imports_only_runtime_packages(built, docker_engine):
    directory, repository = built
    script = ("import importlib.util as u, os; import mlci.serve.app; "
              "print(sorted(m for m in ('click','jinja2','docker','jenkins','matplotlib','pip') if u.find_spec(m)), "
              "os.path.exists('/tmp/wheels'), os.getuid())")
    output = docker_engine.containers.run(f"{repository}:v1", entrypoint=["python", "-c", script],
                                          network_mode="none", remove=True).decode().strip()
    # click comes with uvicorn; nothing else outside the runtime set is installed
    assert output == "['click'] False 10001"


def test_a_model_only_change_reuses_every_cached_layer(built):
    from mlci.ops.deliver.image import build_image

    directory, _ = built
    register_version(directory, seed=1)
    report = build_image(load_project(directory), ref="2")
    assert report.ok
    details = report.details
    assert details["cached_steps"] >= 7  # every step before the model's COPY
    assert details["seconds"]["total"] <= 10, details["seconds"]
    assert _record(directory, 2)["image"]["tags"][0] == "v2"
    assert (directory / "reports" / "build.junit.xml").exists() and (directory / "reports" / "build.html").exists()


def test_push_records_the_digest_the_registry_serves(built, image_registry, run_cli):
    directory, repository = built
    code, out, err = run_cli("-C", directory, "--json", "push", "--model", "1")
    assert code == 0, err
    digest = json.loads(out)["details"]["reference"].split("@")[1]
    name = repository.split("/", 1)[1]
    assert name in registry_catalog(image_registry)
    with_manifest = http_get(f"http://{image_registry}/v2/{name}/manifests/{digest}")
    assert with_manifest[0] == 200
    assert _record(directory, 1)["image"]["digest"] == digest


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A registry that rejects the credentials it is given (as for a revoked or read-only token)."""

    def _refuse(self) -> None:
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("WWW-Authenticate", 'Basic realm="mlci-test"')
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"access denied for this user"}]}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _refuse

    def log_message(self, *args) -> None:
        pass


def test_a_refusing_registry_is_exit_3_with_a_clear_message(built, docker_engine, run_cli):
    directory, repository = built
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    refusing = f"127.0.0.1:{server.server_address[1]}/mlci-refused"
    try:
        docker_engine.images.get(f"{repository}:v1").tag(refusing, "v1")
        project = load_project(directory)
        open_registry(project).update(1, lambda r: r["image"].update(name=refusing, tags=["v1"]))
        code, out, err = run_cli("-C", directory, "push", "--model", "1")
    finally:
        server.shutdown()
        docker_engine.images.remove(f"{refusing}:v1")
    assert code == 3
    assert "the registry refused the push" in err and "auth" in err, err
    assert "mlci: hint:" in err and "Traceback" not in err


def test_a_dead_docker_engine_is_exit_3(built, run_cli, tmp_path):
    directory, _ = built
    for command in (["build"], ["push"], ["deploy", "--env", "staging", "--model", "1"]):
        code, out, err = run_cli("-C", directory, *command, env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
        assert code == 3, (command, err)
        assert f"Docker engine at unix://{tmp_path}/no.sock" in err and "Traceback" not in err


# -- the lean image: only what serving imports ----------------------------------------------------------

# Not installed in the serving image: pandas (84 MB) and matplotlib, and what only they bring.
NOT_SERVED = ("pandas", "matplotlib", "pyarrow", "python-dateutil", "pytz", "tzdata")
MAX_ADDED_MB = 290  # over the base image: numpy, scipy and scikit-learn take about 230 MB of it


@pytest.fixture(scope="module")
def lean(tmp_path_factory, docker_engine, image_registry, base_image):
    """The example with mlci's own preprocessing (booleans, date parts): version 1 compiles, version 2
    (a PCA step in model.steps) is scored by the scikit-learn pipeline; an image built for each."""
    from mlci.ops.deliver.image import build_image

    directory = copy_example(tmp_path_factory.mktemp("lean"))
    repository = configure_delivery(directory, registry=image_registry, base_image=base_image,
                                    ports=(free_port(), free_port()))
    reports = {}
    for kind in MLCI_PIPELINES:
        version = register_version(directory, kind)["version"]
        reports[kind] = build_image(load_project(directory), ref=str(version))
        assert reports[kind].ok
    yield directory, repository, reports
    for image in docker_engine.images.list(name=repository):
        docker_engine.images.remove(image.id, force=True)


def _run_python(docker_engine, image: str, script: str) -> tuple[int, str]:
    container = docker_engine.containers.run(image, entrypoint=["python", "-c", script], network_mode="none",
                                             detach=True)
    try:
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove(force=True)


def test_the_lean_image_holds_only_the_servers_packages_and_their_dependencies(lean, docker_engine):
    directory, repository, _ = lean
    script = (
        "import importlib.metadata as md, re\n"
        f"wanted = {list(RUNTIME_PACKAGES + OPTIONAL_PACKAGES)!r}\n"
        "key = lambda name: re.sub(r'[-_.]+', '-', name).lower()\n"
        "installed = {key(d.metadata['Name']): d for d in md.distributions()}\n"
        "needed, todo = set(), [key(n) for n in wanted if key(n) in installed]\n"
        "while todo:\n"
        "    name = todo.pop()\n"
        "    if name in needed: continue\n"
        "    needed.add(name)\n"
        "    for req in installed[name].requires or []:\n"
        "        if 'extra ==' in req: continue\n"
        "        dep = key(re.match(r'[A-Za-z0-9._-]+', req).group())\n"
        "        if dep in installed: todo.append(dep)\n"
        "print(sorted(installed)); print(sorted(set(installed) - needed))\n")
    code, output = _run_python(docker_engine, f"{repository}:v1", script)
    assert code == 0, output
    installed_line, extra_line = output.strip().splitlines()
    print(f"packages in the serving image: {installed_line}")
    installed = ast.literal_eval(installed_line)
    assert {"numpy", "scipy", "scikit-learn", "skops", "starlette", "uvicorn"} <= set(installed)
    assert not set(NOT_SERVED) & set(installed)
    assert extra_line == "[]", f"installed but needed by nothing the server imports: {extra_line}"


@pytest.mark.parametrize("module", ["pandas", "matplotlib"])
def test_importing_pandas_or_matplotlib_in_the_lean_image_fails(lean, docker_engine, module):
    _, repository, _ = lean
    code, output = _run_python(docker_engine, f"{repository}:v1", f"import {module}")
    assert code == 1 and f"ModuleNotFoundError: No module named '{module}'" in output, output


def test_the_lean_image_adds_at_most_290_mb_to_its_base(lean, docker_engine, base_image):
    _, repository, reports = lean
    details = reports["mlci"].details
    added = (docker_engine.images.get(f"{repository}:v1").attrs["Size"]
             - docker_engine.images.get(base_image).attrs["Size"]) / 1e6
    print(f"serving image: {details['size_mb']} MB, {added:.1f} MB over its base ({details['base_size_mb']} MB)")
    assert details["added_mb"] == round(added, 1)
    assert added <= MAX_ADDED_MB


@pytest.mark.parametrize("kind, scoring", [("mlci", "compiled"), ("mlci+pca", "pipeline")])
def test_the_lean_image_answers_predict_on_both_scoring_paths(lean, docker_engine, kind, scoring):
    """Inside the image (no pandas), /predict answers what the pipeline answers on the host."""
    import time
    import urllib.request

    import numpy as np

    from mlci.serve.model import load_served_model
    from mlci.serve.validation import RecordValidator

    directory, repository, reports = lean
    version = reports[kind].details["version"]
    port = free_port()
    container = docker_engine.containers.run(
        f"{repository}:v{version}", network_mode="host", detach=True,
        environment={"MLCI_SERVE_HOST": "127.0.0.1", "MLCI_SERVE_PORT": str(port)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if http_get(f"http://127.0.0.1:{port}/health/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"the container never became ready: {container.logs().decode()[-2000:]}")
        assert json.loads(http_get(f"http://127.0.0.1:{port}/version")[1])["scoring"] == scoring
        records = holdout_records(directory, rows=25)
        records[0].update(income=None, employment=None, application_date="2024-02-29T23:30:00-05:00")
        records[1].update(region="central")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps(records).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
    finally:
        container.remove(force=True)
    model = load_served_model(load_project(directory).registry_dir, version)
    columns, problems = RecordValidator(model.schema, model.features, accept_unknown_categories=True).validate(records)
    assert not problems
    expected = model.pipeline.predict_proba(pipeline_frame(model, columns))
    assert answer["probabilities"] == np.round(expected, 6).tolist()
