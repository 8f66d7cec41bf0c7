#!/usr/bin/env bash
# What the test suite needs beyond the models: run by `scripts/setup.sh --ci`. Idempotent.
#   - a Python venv at .venv with the test clients (openai, pytest)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

echo "== python test environment (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Pinned so CI is repeatable; pip skips what is already installed.
.venv/bin/pip install --quiet --disable-pip-version-check \
  "openai==1.109.1" "pytest==8.4.2"

# The web console test drives Debian's Chromium through Playwright (the Python package only:
# never `playwright install`; the test launches /usr/bin/chromium itself).
echo "== headless browser for the console test (chromium, playwright)"
.venv/bin/pip install --quiet --disable-pip-version-check "playwright==1.65.2"
if ! command -v chromium >/dev/null 2>&1; then
  sudo_if_needed=""
  if [ "$(id -u)" -ne 0 ]; then sudo_if_needed="sudo"; fi
  $sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -qq chromium
fi

# Plugin guest toolchains for the example judges (engram-plugins' language_judges test):
# componentize-py (Python → component) and componentize-js (JavaScript → component).
echo "== plugin guest toolchains (componentize-py, componentize-js)"
.venv/bin/pip install --quiet --disable-pip-version-check "componentize-py==0.25.1"
if [ ! -d examples/js-judge/node_modules/@bytecodealliance/componentize-js ] \
   || [ ! -d examples/js-judge/node_modules/@bytecodealliance/preview2-shim ]; then
  # `npm install` (not `npm ci`): the lock omits optional per-platform packages that newer
  # npm versions insist on, which makes `npm ci` refuse it.
  (cd examples/js-judge && npm install --no-audit --no-fund --loglevel=error)
fi

# NVRTC for engram-cuda's kernel compile test (every file of kernels/ to PTX): CI has no GPU
# and no CUDA toolkit; this wheel is just libnvrtc, matching cudarc's pinned cuda-12080 API.
echo "== NVRTC for the CUDA kernel compile test (nvidia-cuda-nvrtc-cu12)"
.venv/bin/pip install --quiet --disable-pip-version-check "nvidia-cuda-nvrtc-cu12==12.8.93"

# The engine benchmark's peer (`engram bench engine` runs llama.cpp through it). Built from
# source by pip (several minutes the first time); skipped when this build is installed.
# On x86_64 it is built for the machine's own vector extensions but without AMX: ggml's
# default -march=native build runs AMX tile instructions (`ldtilecfg`) on a CPU that
# advertises AMX, and they fault where the VM does not enable the tile state (the peer died
# with SIGSEGV on such a machine).
echo "== llama.cpp peer for the engine benchmark (llama-cpp-python)"
llama_marker=.venv/.llama-cpp-python-0.3.36-no-amx
if [ ! -f "$llama_marker" ]; then
  cmake_args=""
  if [ "$(uname -m)" = x86_64 ]; then
    cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    cmake_args="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C avx512f:AVX512 avx512_vnni:AVX512_VNNI \
                avx512vbmi:AVX512_VBMI avx512_bf16:AVX512_BF16 avx_vnni:AVX_VNNI; do
      case "$cpu_flags" in *" ${pair%%:*} "*) cmake_args+=" -DGGML_${pair#*:}=ON" ;; esac
    done
  fi
  .venv/bin/pip uninstall --quiet --yes llama-cpp-python >/dev/null 2>&1 || true
  CMAKE_ARGS="$cmake_args" .venv/bin/pip install --quiet --disable-pip-version-check \
    --no-cache-dir "llama-cpp-python==0.3.36"
  touch "$llama_marker"
fi
