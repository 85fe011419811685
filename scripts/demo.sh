#!/usr/bin/env bash
# The main job: on a fresh machine, install mlci and start its services, then run the full pipeline
# (validate, train, evaluate, gate, build, push, deploy to staging) on the bundled example project.
#   scripts/demo.sh [extra `mlci run` arguments, e.g. --to gate]
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
export PATH=$root/.venv/bin:$PATH

example=examples/credit-risk
# The registry and base image started on this machine stand in for the ones a team configures in
# mlci.yaml (no public image registry is reachable here).
export MLCI_IMAGE__BASE=${MLCI_IMAGE__BASE:-$MLCI_TEST_BASE_IMAGE}
export MLCI_IMAGE__NAME=${MLCI_IMAGE__NAME:-$MLCI_TEST_REGISTRY/credit-risk}

say "running the pipeline on $example"
mlci -C "$example" run --env staging "$@"
