#!/usr/bin/env bash
# Build the Python judge component: examples/python-judge/judge_py.wasm.
# Needs componentize-py (scripts/setup-ci.sh installs it into .venv).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cpy="${COMPONENTIZE_PY:-$root/.venv/bin/componentize-py}"
out="${1:-$here/judge_py.wasm}"
cd "$here"
"$cpy" -d "$root/wit" -w judge componentize app --stub-wasi -o "$out"
