#!/usr/bin/env bash
# Run Engram's whole test suite. This is the README's test command; .ci/run calls it.
#   1. setup for CI (models incl. Qwen, wasm target, plugins, Python/JS test tools)
#   2. every Rust test in the workspace, and the default plugins' unit tests
#   3. the black-box tests: the real `engram serve` driven over HTTP by the openai client
#   4. every benchmark suite at smoke size (`bench all --quick`), so none can rot
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh --ci
cargo test --workspace --all-targets
# The default plugins' own unit tests (capture-facts' statement patterns), run natively:
# their workspace builds for wasm32-wasip2 by default.
(cd plugins && cargo test --quiet --target "$(rustc -vV | sed -n 's/^host: //p')")
# The same targets (and so the same feature set) as the tests above, so this only links: a plain
# `-p engram` or `--workspace` build unifies features without the dev-dependencies and
# rebuilds the binary and its crates (~4 min on 2 cores).
cargo build --workspace --all-targets
ENGRAM_BIN="$root/target/debug/engram" .venv/bin/python -m pytest -q tests/python
# Smoke-sized benchmarks through the debug binary: they fail the run when a suite breaks; their
# figures are not results (BENCHMARKS.md quotes release-binary runs). LoCoMo itself is licensed
# data kept outside the repository, so the smoke reads a small hand-written file of its layout.
"$root/target/debug/engram" bench all --quick \
  --data-file "$root/tests/fixtures/locomo-smoke.json" --json "$root/artifacts/bench-smoke"
