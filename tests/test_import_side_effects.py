"""Importing an mlci module changes no global state: template filters and logging filters are installed
by the code that needs them, when it runs."""

from __future__ import annotations

import subprocess
import sys


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_jenkins_client_leaves_the_root_logger_alone():
    assert _python("import logging, mlci.adapters.jenkins_client; print(len(logging.getLogger().filters))") == "0"


def test_a_jenkins_client_drops_the_header_log_line_once_created():
    code = ("import logging; from mlci.adapters.jenkins_client import JenkinsClient\n"
            "JenkinsClient('http://127.0.0.1:9'); JenkinsClient('http://127.0.0.1:9')\n"
            "print(len(logging.getLogger().filters))")
    assert _python(code) == "1"


def test_importing_the_pipelines_registers_no_template_filter():
    code = ("import mlci.ops.jenkins.pipelines\nfrom mlci.ops.reporting.render import _environment\n"
            "print(sorted(set(_environment().filters) & {'groovy', 'groovy_int', 'groovy_condition', 'chomp'}))")
    assert _python(code) == "[]"
