#!/usr/bin/env bash
# The project's test command: scripts/test.sh [pytest arguments...]
#
# Installs the project and starts the real services it tests against (scripts/setup.sh), then runs
# `python -m pytest -q "$@"` and exits with pytest's code; "no tests collected" is a failure.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

# --- tests ------------------------------------------------------------------------------------
set +e
"$py" -m pytest -q "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  say "ERROR: pytest collected no tests (exit code 5); treating that as a failure"
  exit 1
fi
exit $rc
