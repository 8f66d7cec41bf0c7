#!/usr/bin/env bash
# Set up Engram on a fresh machine; idempotent (a second run downloads nothing).
#
#   scripts/setup.sh              default models + wasm target + default plugins
#   scripts/setup.sh --with-qwen  also Qwen2.5-Coder-0.5B-Instruct (the engine tests use it)
#   scripts/setup.sh --ci         everything CI needs (implies --with-qwen)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

with_qwen=()
ci=0
for arg in "$@"; do
  case "$arg" in
    --with-qwen) with_qwen=(--with-qwen) ;;
    --ci) ci=1; with_qwen=(--with-qwen) ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

echo "== rust target wasm32-wasip2"
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi

echo "== models (verified by sha256)"
python3 scripts/fetch_models.py models "${with_qwen[@]}"

if [ -f plugins/Cargo.toml ]; then
  echo "== default plugins (wasm32-wasip2 components)"
  (cd plugins && cargo build --release --quiet)
fi

if [ "$ci" = 1 ] && [ -x scripts/setup-ci.sh ]; then
  scripts/setup-ci.sh
fi
echo "== setup done"
