"""Session fixtures for the real components the tests use (Docker, registry, Pushgateway, Groovy, promtool).

``scripts/setup-services.sh`` installs and starts them and prints their environment; ``scripts/test.sh``
loads it. The fixtures read the same variables (with the same defaults):

    DOCKER_HOST              Docker engine (docker SDK default: unix:///var/run/docker.sock)
    MLCI_TEST_REGISTRY       image registry host:port (127.0.0.1:5000)
    MLCI_TEST_PUSHGATEWAY    Pushgateway URL (http://127.0.0.1:9091)
    MLCI_TEST_BASE_IMAGE     Python base image tag (mlci-base:bookworm)
    JAVA_HOME                JDK 17 for Groovy (found under /usr/lib/jvm when unset)
    MLCI_TEST_GROOVY         groovy binary (found on PATH when unset)
    MLCI_TEST_PROMTOOL       promtool binary (found on PATH when unset)
    MLCI_TEST_MLFLOW         MLflow tracking server URL (http://127.0.0.1:5001)
    MLCI_TEST_CHROMIUM       headless browser for the HTML reports (Debian chromium, found on PATH when unset)

A missing component skips the test locally (with a hint to run ``scripts/setup-services.sh``) and
FAILS it when ``CI`` is set: CI must never pass by silently skipping.

The one exception is a real Jenkins controller, which no script here can start: the ``real`` cases of
``tests/test_jenkins_contract.py`` run the Jenkins contract against the controller named by
``MLCI_TEST_JENKINS_URL``, ``MLCI_TEST_JENKINS_USER`` and ``MLCI_TEST_JENKINS_TOKEN`` (e.g. the one
``docker/jenkins`` builds) and are skipped, also in CI, with that reason when those are unset; their
``emulator`` cases always run.

Groovy: ``groovy_parse_many([...])`` compiles many Groovy files or texts in ONE JVM (start-up costs
about a second) and returns ``{item: (ok, message)}``; ``groovy_parse(item)`` does one. Compiling
runs the parser and the compiler up to class generation, as Jenkins does before running a
Jenkinsfile, but never executes the script. A declarative ``pipeline { ... }`` block is plain method
calls with closures, so it compiles without any Jenkins plugin.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["docker_engine", "image_registry", "pushgateway", "groovy", "base_image", "promtool", "mlflow_server",
           "chromium"]

SETUP_HINT = "run scripts/setup-services.sh (or scripts/test.sh) to install and start it"

DEFAULT_REGISTRY = "127.0.0.1:5000"
DEFAULT_PUSHGATEWAY = "http://127.0.0.1:9091"
DEFAULT_MLFLOW = "http://127.0.0.1:5001"
DEFAULT_BASE_IMAGE = "mlci-base:bookworm"


def in_ci() -> bool:
    """True when the CI environment variable is set to something other than a false value."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def unavailable(what: str) -> None:
    """Fail (in CI) or skip (locally) the requesting test because a real component is missing."""
    message = f"{what}; {SETUP_HINT}"
    if in_ci():
        pytest.fail(f"required component unavailable in CI: {message}", pytrace=False)
    pytest.skip(message)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url``; returns (status, body). Raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _probe(url: str) -> tuple[int, str]:
    """(HTTP status, "") when ``url`` answers, else (0, the connection error)."""
    try:
        return http_get(url)[0], ""
    except OSError as err:
        return 0, str(err)


# --------------------------------------------------------------------------------------------
# Groovy


def find_java_home() -> str | None:
    """JAVA_HOME if it holds a java binary, else a JDK/JRE 17 under /usr/lib/jvm."""
    candidates = [os.environ.get("JAVA_HOME", "")]
    candidates += sorted(glob.glob("/usr/lib/jvm/java-17-openjdk-*")) + sorted(glob.glob("/usr/lib/jvm/*17*"))
    for home in candidates:
        if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
            return home
    return None


def find_groovy() -> str | None:
    return os.environ.get("MLCI_TEST_GROOVY") or shutil.which("groovy")


# Runs inside the JVM: compiles every listed source in its own CompilationUnit (so two files named
# Jenkinsfile do not clash) up to class generation, without loading or running anything.
# List lines: base64(display name) TAB base64(path). Result lines: ##MLCI-RESULT <n> OK|FAIL <b64>.
_GROOVY_CHECKER = r"""
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases

def b64 = { String s -> s.getBytes('UTF-8').encodeBase64().toString() }
int n = 0
new File(args[0]).eachLine('UTF-8') { String line ->
    if (!line.trim()) return
    def parts = line.split('\t')
    String name = new String(parts[0].decodeBase64(), 'UTF-8')
    String path = new String(parts[1].decodeBase64(), 'UTF-8')
    String result
    try {
        def unit = new CompilationUnit(new CompilerConfiguration())
        unit.addSource(name, new File(path).getText('UTF-8'))
        unit.compile(Phases.CLASS_GENERATION)
        result = 'OK'
    } catch (CompilationFailedException e) {
        result = 'FAIL ' + b64(e.message ?: e.toString())
    } catch (Throwable e) {
        result = 'FAIL ' + b64(e.toString())
    }
    println "##MLCI-RESULT ${n} ${result}"
    n++
}
"""


def _is_file_item(item: str | os.PathLike) -> bool:
    if isinstance(item, os.PathLike):
        return True
    return "\n" not in item and len(item) < 4096 and os.path.isfile(item)


def groovy_parse_many(
    items: Iterable[str | os.PathLike],
    *,
    groovy_bin: str | None = None,
    java_home: str | None = None,
    timeout: float = 300,
) -> dict:
    """Compile (not run) many Groovy sources in one JVM; returns ``{item: (ok, message)}``.

    Each item is a path (``os.PathLike``, or a ``str`` naming an existing file) or Groovy source
    text (any other ``str``; reported under the name ``Jenkinsfile``). ``message`` is ``""`` on
    success and the compiler's error (with line and column) on failure. Raises ``RuntimeError``
    when Groovy itself cannot run.
    """
    items = list(dict.fromkeys(items))  # keep order, drop duplicates (they would share a key)
    if not items:
        return {}
    groovy_bin = groovy_bin or find_groovy()
    java_home = java_home or find_java_home()
    if not groovy_bin or not java_home:
        raise RuntimeError(f"groovy or Java 17 not found; {SETUP_HINT}")
    env = {**os.environ, "JAVA_HOME": java_home}
    # A short-lived compiler JVM: skip the optimizing JIT, it only costs start-up time here.
    env["JAVA_OPTS"] = (env.get("JAVA_OPTS", "") + " -XX:+UseSerialGC -XX:TieredStopAtLevel=1").strip()

    def b64(text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    with tempfile.TemporaryDirectory(prefix="mlci-groovy-") as tmp:
        lines = []
        for i, item in enumerate(items):
            if _is_file_item(item):
                path = os.path.abspath(os.fspath(item))
                name = os.path.basename(path)
            else:
                path = os.path.join(tmp, f"source-{i}.groovy")
                Path(path).write_text(str(item), encoding="utf-8")
                name = "Jenkinsfile"
            lines.append(f"{b64(name)}\t{b64(path)}")
        listing = os.path.join(tmp, "sources.txt")
        Path(listing).write_text("\n".join(lines) + "\n", encoding="utf-8")
        checker = os.path.join(tmp, "MlciCompileCheck.groovy")
        Path(checker).write_text(_GROOVY_CHECKER, encoding="utf-8")
        proc = subprocess.run([groovy_bin, checker, listing], env=env, capture_output=True, text=True,
                              timeout=timeout)

    results: dict = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("##MLCI-RESULT "):
            continue
        _, index, verdict, *rest = line.split(" ", 3)
        message = base64.b64decode(rest[0]).decode("utf-8") if rest else ""
        results[items[int(index)]] = (verdict == "OK", message)
    if proc.returncode != 0 or len(results) != len(items):
        raise RuntimeError(f"groovy exited with {proc.returncode} after {len(results)}/{len(items)} "
                           f"sources:\n{proc.stderr[-2000:]}")
    return results


def groovy_parse(item: str | os.PathLike, **kwargs) -> tuple[bool, str]:
    """Compile (not run) one Groovy file or source text; returns (ok, message)."""
    return groovy_parse_many([item], **kwargs)[item]


@dataclass(frozen=True)
class Groovy:
    """A working Groovy 2.4 (``path``) on JDK 17 (``java_home``); calling it compiles one source."""

    path: str
    java_home: str
    version: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "JAVA_HOME": self.java_home}

    def parse_many(self, items: Iterable[str | os.PathLike], **kwargs) -> dict:
        return groovy_parse_many(items, groovy_bin=self.path, java_home=self.java_home, **kwargs)

    def parse(self, item: str | os.PathLike, **kwargs) -> tuple[bool, str]:
        return self.parse_many([item], **kwargs)[item]

    __call__ = parse


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def docker_engine():
    """A docker SDK client (from DOCKER_HOST) whose daemon answered a ping."""
    try:
        import docker
    except ImportError:
        unavailable("the docker SDK is not installed (pip install -e '.[dev]')")
    client, problem = None, ""
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as err:  # DockerException, connection errors
        problem = str(err)
    if problem:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        unavailable(f"no Docker engine answers at {host} ({problem})")
    yield client
    client.close()


@pytest.fixture(scope="session")
def image_registry() -> str:
    """``host:port`` of a Docker registry (v2 API) that answered ``GET /v2/``."""
    address = os.environ.get("MLCI_TEST_REGISTRY", DEFAULT_REGISTRY)
    status, problem = _probe(f"http://{address}/v2/")
    if problem:
        unavailable(f"no image registry answers at {address} ({problem})")
    if status != 200:
        unavailable(f"the registry at {address} answered GET /v2/ with HTTP {status}")
    return address


@pytest.fixture(scope="session")
def pushgateway() -> str:
    """Base URL (no trailing slash) of a Prometheus Pushgateway that answered ``/-/ready``."""
    url = os.environ.get("MLCI_TEST_PUSHGATEWAY", DEFAULT_PUSHGATEWAY).rstrip("/")
    status, problem = _probe(f"{url}/-/ready")
    if problem:
        unavailable(f"no Pushgateway answers at {url} ({problem})")
    if status != 200:
        unavailable(f"the Pushgateway at {url} answered /-/ready with HTTP {status}")
    return url


@pytest.fixture(scope="session")
def mlflow_server() -> str:
    """Base URL of a real MLflow tracking server that answered ``/health`` (its client must be installed)."""
    url = os.environ.get("MLCI_TEST_MLFLOW", DEFAULT_MLFLOW).rstrip("/")
    status, problem = _probe(f"{url}/health")
    if problem:
        unavailable(f"no MLflow tracking server answers at {url} ({problem})")
    if status != 200:
        unavailable(f"the MLflow server at {url} answered /health with HTTP {status}")
    try:
        import mlflow  # noqa: F401
    except ImportError:
        unavailable("the MLflow client is not installed (pip install -e '.[dev]')")
    return url


@pytest.fixture(scope="session")
def groovy() -> Groovy:
    """Groovy 2.4 on JDK 17: ``groovy(text_or_path) -> (ok, msg)``, ``groovy.parse_many([...])``.

    Also sets JAVA_HOME in this process when it was unset, so direct ``groovy`` calls work.
    """
    groovy_bin = find_groovy()
    java_home = find_java_home()
    if not groovy_bin:
        unavailable("groovy is not installed")
    if not java_home:
        unavailable("no Java 17 found (JAVA_HOME unset and nothing under /usr/lib/jvm)")
    try:
        proc = subprocess.run([groovy_bin, "--version"], env={**os.environ, "JAVA_HOME": java_home},
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        unavailable(f"groovy does not run ({err})")
    if proc.returncode != 0 or "Groovy Version" not in proc.stdout:
        unavailable(f"groovy does not run: {(proc.stdout + proc.stderr).strip()[-500:]}")
    os.environ.setdefault("JAVA_HOME", java_home)
    return Groovy(path=groovy_bin, java_home=java_home, version=proc.stdout.strip())


@pytest.fixture(scope="session")
def base_image(docker_engine) -> str:
    """Tag of the local Python base image (``mlci-base:bookworm``) for test builds."""
    import docker

    name = os.environ.get("MLCI_TEST_BASE_IMAGE", DEFAULT_BASE_IMAGE)
    try:
        docker_engine.images.get(name)
    except docker.errors.ImageNotFound:
        unavailable(f"the base image {name} does not exist")
    except docker.errors.DockerException as err:
        unavailable(f"cannot inspect the base image {name} ({err})")
    return name


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of a working ``promtool`` (checks Prometheus rule files)."""
    path = os.environ.get("MLCI_TEST_PROMTOOL") or shutil.which("promtool")
    if not path:
        unavailable("promtool is not installed (Debian package prometheus)")
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        unavailable(f"promtool does not run ({err})")
    if proc.returncode != 0:
        unavailable(f"promtool does not run: {(proc.stdout + proc.stderr).strip()[-500:]}")
    return path


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a working Chromium (Debian ``chromium``) for loading HTML reports headless."""
    path = os.environ.get("MLCI_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        unavailable("chromium is not installed (Debian package chromium)")
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        unavailable(f"chromium does not run ({err})")
    if proc.returncode != 0 or "Chromium" not in proc.stdout:
        unavailable(f"chromium does not run: {(proc.stdout + proc.stderr).strip()[-500:]}")
    return path


def registry_catalog(address: str) -> list[str]:
    """Repositories in the registry at ``address`` (``GET /v2/_catalog``)."""
    status, body = http_get(f"http://{address}/v2/_catalog")
    if status != 200:
        raise RuntimeError(f"GET /v2/_catalog on {address} answered HTTP {status}")
    return json.loads(body)["repositories"] or []
