#!/usr/bin/env bash
# The main job: on a fresh machine, install mlci and its services, then run the full pipeline
# (validate, train, evaluate, gate, build, push, deploy to staging) on the bundled example project.
#   scripts/demo.sh [extra `mlci run` arguments, e.g. --to gate]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf '[demo] %s\n' "$*" >&2; }

# The test command's set-up installs the package into .venv and starts the services; reuse it.
MLCI_SETUP_ONLY=1 scripts/test.sh
eval "$(scripts/setup-services.sh --env)"
export PATH=$root/.venv/bin:$PATH

example=examples/credit-risk
# The services on this machine stand in for the ones a team would configure in mlci.yaml.
export MLCI_IMAGE__BASE=${MLCI_IMAGE__BASE:-$MLCI_TEST_BASE_IMAGE}
export MLCI_IMAGE__NAME=${MLCI_IMAGE__NAME:-$MLCI_TEST_REGISTRY/credit-risk}

say "running the pipeline on $example"
mlci -C "$example" run "$@"
