"""mlci.adapters.commands: every external program runs with a timeout, and its failures are service errors
(exit 3) that name the program."""

from __future__ import annotations

import sys

import pytest

from mlci.adapters.commands import git_output, run_command
from mlci.errors import ServiceError


def test_a_program_that_outlives_its_timeout_is_a_service_error():
    with pytest.raises(ServiceError, match=r"^slow thing did not finish within 0.5s$") as caught:
        run_command([sys.executable, "-c", "import time; time.sleep(30)"], what="slow thing", timeout=0.5,
                    hint="h")
    assert caught.value.exit_code == 3 and caught.value.hint == "h"


def test_a_missing_program_is_a_service_error():
    with pytest.raises(ServiceError, match=r"^kubectl apply could not run: No such file or directory"):
        run_command(["/nonexistent/kubectl", "apply"], what="kubectl apply", timeout=5, hint="install kubectl")


def test_check_turns_a_failing_exit_into_a_service_error_with_the_end_of_stderr():
    script = "import sys; sys.stderr.write('first\\nsecond\\nthird\\n'); sys.exit(2)"
    with pytest.raises(ServiceError, match=r"^pip download failed: second third$"):
        run_command([sys.executable, "-c", script], what="pip download", timeout=30, check=True, hint="h")


def test_without_check_the_exit_code_is_the_callers_to_judge():
    result = run_command([sys.executable, "-c", "print('out'); raise SystemExit(1)"], what="x", timeout=30, hint="h")
    assert (result.returncode, result.stdout) == (1, "out\n")


def test_git_output_is_none_outside_a_repository(tmp_path):
    assert git_output(tmp_path, "rev-parse", "HEAD") is None
