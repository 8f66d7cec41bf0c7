#!/usr/bin/env bash
# The CUDA backend's GPU checks (issue 10), prepared on a machine with the Rust toolchain and
# run on a lent GPU machine (the `device` tool's nvidia-h200: no Rust, no network, a copy of
# the working tree plus at most 64 MiB of carried paths per call).
#
# What the GPU run checks (logs under $OUT):
#   - host/cuda/tests/gpu_parity.rs, every test: operators against the CPU (also every weight
#     type, on SmolLM2 rebuilt with synthetic matrices of each), greedy tokens on
#     CUDA = CPU on the fixtures' prompts up to the first near-tie (margin < 1.0), device-
#     resident sessions = the per-operator path bit for bit, snapshots moving sessions
#     CPU <-> GPU, the exact islands = engram_exact bit for bit, and the exact-mode logits
#     digest CPU = GPU;
#   - `engram info`, `engram check-reference --device cuda` (the llama.cpp reference fixture's
#     logits and greedy continuations, on the GPU), `engram bench engine --device cuda`
#     (prefill/decode tok/s with the device name), and `engram generate --exact --digest` on
#     cpu and cuda (the digests must match).
# Only SmolLM2 travels (Qwen2.5 is 400 MB): the tests name Qwen2.5 in a SKIPPED line there.
#
# HOW TO RUN IT (a session whose task is lent a GPU; `status` says can_start_another: true):
#   1. Here, in the checkout:   scripts/gpu-check.sh prepare
#      builds `cargo build --release -p engram` and the gpu_parity test binary, and stages
#      target/gpu-check/a (first 50 MiB of the model, the test binary, compute_90 PTX prebuilt
#      by this machine's NVRTC as a fallback) and target/gpu-check/b
#      (second half + the engram binary), each under the tool's 64 MiB. Commit or keep the
#      working tree as it is afterwards: the binaries must match the tree that travels.
#   2. Device call 1 (starts the machine; runs the model-free GPU tests):
#        run(command="bash scripts/gpu-check.sh stage-a", carry=["target/gpu-check/a"], timeout_s=300)
#   3. Device call 2, AT ONCE after call 1 returns (a warm machine is given back after ~30 s
#      idle; files call 1 left stay there, so the model's halves meet):
#        run(command="bash scripts/gpu-check.sh run", carry=["target/gpu-check/b"], timeout_s=540)
#      If it says part A is missing (the machine went back between the calls), rerun both calls.
#   4. give_back. Read $OUT's files under the reply's files_at: summary.txt first, then
#      gpu-parity.log, check-reference.txt, bench-engine.txt / engine.json, generate.log.
#      Record the figures in BENCHMARKS.md `## cuda` with the device name.
# Device time: call 1 ≈ machine start (1-2 min) + ~1 min, call 2 ≈ 4-6 min: under 8 minutes of
# commands, inside the 15-minute lease.

set -uo pipefail

MODEL=SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
STAGE=target/gpu-check
# Bytes of the model in part A (the rest goes with the engram binary in part B).
PART_A_BYTES=$((50 * 1024 * 1024))
# What one device call may carry, tree included (the tool's limit is 64 MiB).
CALL_LIMIT=$((63 * 1024 * 1024))

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 1

die() {
    echo "gpu-check: $*" >&2
    exit 1
}

# Bytes of the tracked and untracked-not-ignored files: what travels besides `carry`.
tree_bytes() {
    git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}'
}

dir_bytes() {
    du -sb "$1" | cut -f1
}

prepare() {
    command -v cargo >/dev/null || die "prepare needs cargo (run it where the project builds)"
    [ -f "models/$MODEL" ] || die "models/$MODEL is missing: run scripts/setup.sh"
    echo "== building the engram binary (release) and the gpu_parity test binary"
    cargo build --release -p engram || die "release build failed"
    local json exe
    json="$(cargo test -p engram-cuda --test gpu_parity --no-run --message-format=json)" || die "test build failed"
    exe="$(printf '%s\n' "$json" | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu_parity":
        print(m["executable"])
')"
    [ -x "$exe" ] || die "could not find the gpu_parity test executable"
    rm -rf "$STAGE"
    mkdir -p "$STAGE/a" "$STAGE/b"
    echo "== staging into $STAGE/a and $STAGE/b"
    strip -o "$STAGE/a/gpu_parity" "$exe" || die "strip failed"
    strip -o "$STAGE/b/engram" target/release/engram || die "strip failed"
    xz -T0 -6 "$STAGE/a/gpu_parity" "$STAGE/b/engram" || die "xz failed"
    # Prebuilt PTX for the H200 (compute_90): used there if its NVRTC is missing or fails.
    local ptx="$STAGE/ptx"
    cargo run -q -p engram-cuda --example prebuild_ptx -- "$ptx" compute_90 >/dev/null || die "prebuilding PTX failed"
    tar -cf "$STAGE/a/ptx.tar" -C "$ptx" . || die "tar failed"
    rm -rf "$ptx"
    head -c "$PART_A_BYTES" "models/$MODEL" >"$STAGE/a/model.part"
    tail -c +"$((PART_A_BYTES + 1))" "models/$MODEL" >"$STAGE/b/model.part"
    for part in a b; do
        {
            echo "commit $(git rev-parse HEAD) ($(git status --porcelain | wc -l) paths differ from it)"
            echo "built $(date -u +%FT%TZ) on $(uname -m), $(ldd --version | head -1)"
            (cd "$STAGE/$part" && sha256sum -- *)
        } >"$STAGE/MANIFEST.$part" && mv "$STAGE/MANIFEST.$part" "$STAGE/$part/MANIFEST"
    done
    local tree a b
    tree="$(tree_bytes)"
    a="$(dir_bytes "$STAGE/a")"
    b="$(dir_bytes "$STAGE/b")"
    echo "sizes: tree $tree B, call 1 carries $a B, call 2 carries $b B (limit $CALL_LIMIT B each, tree included)"
    [ $((tree + a)) -le "$CALL_LIMIT" ] || die "call 1 would carry too much: lower PART_A_BYTES"
    [ $((tree + b)) -le "$CALL_LIMIT" ] || die "call 2 would carry too much: raise PART_A_BYTES"
    cat <<EOF

Staged. Now, through the device tool (call 2 right after call 1):
  run(command="bash scripts/gpu-check.sh stage-a", carry=["$STAGE/a"], timeout_s=300)
  run(command="bash scripts/gpu-check.sh run", carry=["$STAGE/b"], timeout_s=540)
  give_back()
EOF
}

# ---- on the GPU machine ----

out() {
    OUT="${OUT:-$root/$STAGE/out}"
    mkdir -p "$OUT"
}

check_part() {
    local part="$1"
    [ -f "$STAGE/$part/MANIFEST" ] || return 1
    (cd "$STAGE/$part" && sed -n '3,$p' MANIFEST | sha256sum -c --quiet -) || return 1
}

unxz_to() {
    # xz may be missing on the image; Python's lzma is there.
    if command -v xz >/dev/null; then
        xz -dc "$1" >"$2"
    else
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
    fi
    chmod +x "$2"
}

# Makes the driver and NVRTC loadable by name for cudarc (built against CUDA 12.8 names:
# it tries libnvrtc.so and libnvrtc.so.12, while a CUDA 13 machine has libnvrtc.so.13). Without
# NVRTC, or when stage-a found it failing ($STAGE/use-prebuilt), the kernels load from the
# PTX prebuilt by `prepare` (ENGRAM_PTX_DIR).
gpu_env() {
    local ptx=/tmp/engram-ptx
    if [ ! -d "$ptx" ] && [ -f "$STAGE/a/ptx.tar" ]; then
        mkdir -p "$ptx" && tar -xf "$STAGE/a/ptx.tar" -C "$ptx"
    fi
    local libs=/tmp/engram-gpu-libs
    mkdir -p "$libs"
    local extra="$libs"
    if ! ldconfig -p 2>/dev/null | grep -q 'libcuda.so.1'; then
        for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu; do
            [ -e "$d/libcuda.so.1" ] && extra="$extra:$d"
        done
    fi
    local nvrtc
    nvrtc="$(find /usr/local /opt /usr/lib -name 'libnvrtc.so*' ! -name '*builtins*' ! -name '*.alt.*' 2>/dev/null | sort -V | tail -1)"
    if [ -n "$nvrtc" ]; then
        ln -sf "$nvrtc" "$libs/libnvrtc.so"
        extra="$extra:$(dirname "$nvrtc")"
        echo "NVRTC: $nvrtc"
    else
        echo "NVRTC: none found under /usr/local /opt /usr/lib"
    fi
    if [ -z "$nvrtc" ] || [ -f "$STAGE/use-prebuilt" ]; then
        export ENGRAM_PTX_DIR="$ptx"
        echo "kernels: prebuilt PTX from $ptx (compute_90, compiled by NVRTC 12.8 where prepared)"
    else
        unset ENGRAM_PTX_DIR
        echo "kernels: compiled by this machine's NVRTC at first use"
    fi
    export LD_LIBRARY_PATH="$extra${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export ENGRAM_CHECKOUT="$root"
    export RUST_BACKTRACE=1
}

stage_a() {
    out
    local log="$OUT/stage-a.log"
    {
        echo "== gpu-check stage-a $(date -u +%FT%TZ)"
        check_part a || die "part A is missing or corrupt under $STAGE/a (carry it: carry=[\"$STAGE/a\"])"
        sed -n '1,2p' "$STAGE/a/MANIFEST"
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
        gpu_env
        mkdir -p "$STAGE/bin"
        unxz_to "$STAGE/a/gpu_parity.xz" "$STAGE/bin/gpu_parity"
        echo "== model-free GPU tests (the rest run in call 2)"
        local tests=(exact_islands_equal_engram_exact_bit_for_bit device_selection_never_panics)
        timeout 200 "$STAGE/bin/gpu_parity" --test-threads=1 --nocapture "${tests[@]}" 2>&1 | tee /tmp/engram-stage-a.txt
        echo "stage-a exit ${PIPESTATUS[0]}"
        if [ -z "${ENGRAM_PTX_DIR:-}" ] && grep -qE 'NVRTC|compiling a kernel|PTX' /tmp/engram-stage-a.txt &&
            grep -qE 'FAILED|panicked' /tmp/engram-stage-a.txt; then
            echo "== this machine's NVRTC failed: again with the prebuilt PTX (call 2 will use it too)"
            touch "$STAGE/use-prebuilt"
            export ENGRAM_PTX_DIR=/tmp/engram-ptx
            timeout 200 "$STAGE/bin/gpu_parity" --test-threads=1 --nocapture "${tests[@]}"
            echo "stage-a (prebuilt PTX) exit $?"
        fi
    } 2>&1 | tee "$log"
}

run_all() {
    out
    local summary="$OUT/summary.txt"
    : >"$summary"
    note() { echo "$*" | tee -a "$summary"; }
    note "== gpu-check run $(date -u +%FT%TZ)"
    check_part a || die "part A is missing under $STAGE/a: the machine was given back after call 1; rerun both calls"
    check_part b || die "part B is missing or corrupt under $STAGE/b (carry it: carry=[\"$STAGE/b\"])"
    sed -n '1,2p' "$STAGE/b/MANIFEST" | tee -a "$summary"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee -a "$summary"
    mkdir -p models "$STAGE/bin"
    if [ ! -f "models/$MODEL" ] || ! echo "$MODEL_SHA256  models/$MODEL" | sha256sum -c --quiet - 2>/dev/null; then
        cat "$STAGE/a/model.part" "$STAGE/b/model.part" >"models/$MODEL"
    fi
    echo "$MODEL_SHA256  models/$MODEL" | sha256sum -c --quiet - || die "the reassembled model's sha256 is wrong"
    note "model: models/$MODEL (sha256 ok)"
    [ -x "$STAGE/bin/gpu_parity" ] || unxz_to "$STAGE/a/gpu_parity.xz" "$STAGE/bin/gpu_parity"
    unxz_to "$STAGE/b/engram.xz" "$STAGE/bin/engram"
    gpu_env >/tmp/engram-gpu-env.txt 2>&1 # not in a pipe: its exports must stay in this shell
    tee -a "$summary" </tmp/engram-gpu-env.txt
    local engram="$STAGE/bin/engram" rc

    echo "== gpu_parity (every test)"
    timeout 300 "$STAGE/bin/gpu_parity" --test-threads=1 --nocapture >"$OUT/gpu-parity.log" 2>&1
    rc=$?
    note "gpu_parity: exit $rc ($(grep -E '^test result' "$OUT/gpu-parity.log" | tail -1))"
    grep -E '^test |SKIPPED|greedy tokens equal|near-tie|resident =|round-trip|prompt [0-9]|running on|every-type model' "$OUT/gpu-parity.log" >>"$summary"

    echo "== engram info"
    timeout 60 "$engram" info >"$OUT/info.txt" 2>&1
    grep -iE 'gpu|nvrtc' "$OUT/info.txt" >>"$summary"

    echo "== engram check-reference --device cuda (the llama.cpp reference fixture, on the GPU)"
    timeout 120 "$engram" check-reference tests/fixtures/ref-smollm2-135m-q4_1.json --device cuda >"$OUT/check-reference.txt" 2>&1
    rc=$?
    note "check-reference --device cuda: exit $rc"
    grep -E '^(PASS|FAIL)' "$OUT/check-reference.txt" >>"$summary"
    [ "$rc" -eq 0 ] || grep -m3 -iE '^error|no GPU|CUDA' "$OUT/check-reference.txt" >>"$summary"

    echo "== engram bench engine --device cuda"
    rm -f artifacts/bench/engine.json
    timeout 200 "$engram" bench engine --device cuda >"$OUT/bench-engine.txt" 2>&1
    rc=$?
    note "bench engine --device cuda: exit $rc"
    grep -E 'tok/s|device|note' "$OUT/bench-engine.txt" >>"$summary"
    [ -f artifacts/bench/engine.json ] && cp artifacts/bench/engine.json "$OUT/engine.json"

    echo "== engram generate --exact --digest, cpu and cuda"
    local prompt="Name three colours." d_cpu d_gpu
    {
        for dev in cpu cuda; do
            echo "-- --device $dev"
            timeout 90 "$engram" generate --exact --digest --device "$dev" --max-tokens 16 --prompt "$prompt"
            echo "exit $?"
        done
        echo "-- float path, --device cuda"
        timeout 60 "$engram" generate --device cuda --max-tokens 24 --prompt "$prompt"
        echo "exit $?"
    } >"$OUT/generate.log" 2>&1
    d_cpu="$(grep -m1 -o 'logits digest.*' "$OUT/generate.log" | awk '{print $NF}')"
    d_gpu="$(grep -o 'logits digest.*' "$OUT/generate.log" | sed -n 2p | awk '{print $NF}')"
    if [ -n "$d_cpu" ] && [ "$d_cpu" = "$d_gpu" ]; then
        note "exact digest CLI: cpu = cuda = $d_cpu"
    else
        note "exact digest CLI: cpu '$d_cpu' vs cuda '$d_gpu' (see generate.log)"
    fi
    note "== done $(date -u +%FT%TZ)"
}

case "${1:-}" in
prepare) prepare ;;
stage-a) stage_a ;;
run) run_all ;;
*)
    sed -n '2,40p' "$0"
    echo "usage: scripts/gpu-check.sh prepare | stage-a | run" >&2
    exit 2
    ;;
esac
