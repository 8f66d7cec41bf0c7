#!/usr/bin/env bash
# Run Engram's whole test suite. This is the README's test command; .ci/run calls it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh --ci
cargo test --workspace --all-targets
