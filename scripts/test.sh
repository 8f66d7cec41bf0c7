#!/usr/bin/env bash
# Run Engram's whole test suite. This is the README's test command; .ci/run calls it.
#   1. setup for CI (models incl. Qwen, wasm target, plugins, Python/JS test tools)
#   2. every Rust test in the workspace
#   3. the black-box tests: the real `engram serve` driven over HTTP by the openai client
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh --ci
cargo test --workspace --all-targets
# The whole workspace (same feature set as the tests above, so this only links): `-p engram`
# alone would unify features differently and rebuild the binary and its crates (~4 min).
cargo build --workspace
ENGRAM_BIN="$root/target/debug/engram" .venv/bin/python -m pytest -q tests/python
