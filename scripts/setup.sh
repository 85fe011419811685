#!/usr/bin/env bash
# Shared set-up of the main job (scripts/demo.sh) and the tests (scripts/test.sh); sourced by both.
#
# 1. creates (or reuses) the virtualenv .venv and installs the project with its dev extra
#    (skipped when pyproject.toml has not changed since the last install; pip's cache lives
#    under MLCI_CACHE_DIR so reinstalls are fast),
# 2. runs scripts/setup-services.sh and exports its environment (Docker, registry, Pushgateway,
#    Groovy, promtool, base image).
# Afterwards $py is the virtualenv's Python and $root the repository.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf '[setup] %s\n' "$*" >&2; }

cache_dir=${MLCI_CACHE_DIR:-/var/cache/mlci}
if ! mkdir -p "$cache_dir" 2>/dev/null || [ ! -w "$cache_dir" ]; then
  cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/mlci
  mkdir -p "$cache_dir"
fi
export MLCI_CACHE_DIR=$cache_dir
export PIP_CACHE_DIR=$cache_dir/pip
export PIP_DISABLE_PIP_VERSION_CHECK=1

# --- virtualenv -------------------------------------------------------------------------------
venv=$root/.venv
if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  say "broken virtualenv at .venv; recreating it"
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  say "creating virtualenv .venv"
  python3 -m venv "$venv"
fi
py=$venv/bin/python

[ -f pyproject.toml ] || { say "ERROR: pyproject.toml not found in $root"; exit 1; }
stamp=$venv/.mlci-install-stamp
want=$({ cat pyproject.toml; "$py" -VV; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ] && "$py" -c 'import mlci, pytest' >/dev/null 2>&1; then
  say "dependencies up to date (pyproject.toml unchanged)"
else
  say "installing the project: pip install -e '.[dev]'"
  rm -f "$stamp"
  "$py" -m pip install -q -e '.[dev]' >&2
  echo "$want" >"$stamp"
fi

# --- real services ----------------------------------------------------------------------------
if ! services_env=$(scripts/setup-services.sh --env); then
  say "ERROR: scripts/setup-services.sh failed; the tests need its services (see the log above)"
  exit 1
fi
eval "$services_env"
