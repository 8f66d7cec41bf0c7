//! Kernel micro-benchmark: the matrix products of one SmolLM2 layer shape, pair-by-pair dot
//! products against the tile kernels, for every kernel table this CPU runs (and Q4_K/Q6_K
//! at 4864 columns, Qwen2.5-0.5B's feed-forward-down width).
//!
//! `cargo bench -p engram-engine --bench kernels [-- N_TOKENS [ROWS]]` prints, per table and
//! weight type, nanoseconds per (row × token) for a ROWS × 576 matrix (default 1536, the
//! feed-forward shape; 49152 = the output matrix, which streams from memory),
//! single-threaded, the minimum over repeats (robust to a loaded machine). Under
//! `cargo test --all-targets` (no `--bench` argument) it runs one small pass as a smoke test,
//! so the benchmark cannot rot without CI noticing.
use engram_engine::kernels::Kernels;
use engram_engine::quant::{quantize_act_row, GgmlType, QK_K};
use std::time::Instant;

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Random weights of type `ty` with sane f16 scales, in u64 storage (aligned).
fn weights(ty: GgmlType, rows: usize, cols: usize) -> (Vec<u64>, usize) {
    let n = ty.row_bytes(cols) * rows;
    let mut b = bytes(7, n);
    let scale = half::f16::from_f32(0.01).to_bits().to_le_bytes();
    for blk in b.chunks_exact_mut(ty.block_bytes()) {
        match ty {
            GgmlType::Q6K => blk[208..210].copy_from_slice(&scale),
            GgmlType::Q4_1 | GgmlType::Q4K => {
                blk[0..2].copy_from_slice(&scale);
                blk[2..4].copy_from_slice(&scale);
            }
            _ => blk[0..2].copy_from_slice(&scale),
        }
    }
    let mut w = vec![0u64; n.div_ceil(8)];
    // SAFETY: the u64 storage holds at least n bytes.
    unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr() as *mut u8, n) }.copy_from_slice(&b);
    (w, n)
}

fn as_bytes(v: &[u64], n: usize) -> &[u8] {
    // SAFETY: within the allocation.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, n) }
}

fn min_time(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let nums: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n_tok = nums.first().copied().unwrap_or(if full { 32 } else { 3 });
    // A large row count (e.g. 49152, the vocabulary) makes the matrix stream from DRAM.
    let rows = nums.get(1).copied().unwrap_or(if full { 1536 } else { 64 });
    let reps = if full { 5 } else { 1 };
    for ty in [
        GgmlType::Q4_1,
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q6K,
    ] {
        // The super-block formats at Qwen2.5-0.5B's feed-forward-down width (19 blocks).
        let cols = if ty.block_size() == QK_K { 4864 } else { 576 };
        println!("{ty:?}: {rows}x{cols} weights, {n_tok} tokens (and 1 token), ns per row·token, single thread");
        let (w, wn) = weights(ty, rows, cols);
        let wb = as_bytes(&w, wn);
        let wrb = ty.row_bytes(cols);
        let act = ty.act_type();
        let arb = act.row_bytes(cols);
        let x: Vec<f32> = bytes(3, n_tok * cols)
            .iter()
            .map(|&b| (b as f32 - 128.0) / 40.0)
            .collect();
        let mut a = vec![0u64; (n_tok * arb).div_ceil(8)];
        // SAFETY: within the allocation.
        let ab = unsafe { std::slice::from_raw_parts_mut(a.as_mut_ptr() as *mut u8, n_tok * arb) };
        for t in 0..n_tok {
            quantize_act_row(act, &x[t * cols..(t + 1) * cols], &mut ab[t * arb..(t + 1) * arb]);
        }
        let ab: &[u8] = ab;
        let mut out = vec![0f32; n_tok * rows];
        for k in Kernels::available() {
            for toks in [1, n_tok] {
                let dot = k.dot_for(ty);
                let pairs = min_time(reps, || {
                    for r in 0..rows {
                        for t in 0..toks {
                            out[t * rows + r] = dot(&wb[r * wrb..(r + 1) * wrb], &ab[t * arb..(t + 1) * arb]);
                        }
                    }
                });
                let mut line = format!(
                    "{:?} {:>7} {:>3} tok: pair dots {:6.2}",
                    ty,
                    format!("{:?}", k.isa),
                    toks,
                    pairs * 1e9 / (rows * toks) as f64
                );
                if let Some(tile) = k.tile_for(ty, toks) {
                    let mut buf = [0f32; 64];
                    let tiled = min_time(reps, || {
                        let mut t0 = 0;
                        while t0 < toks {
                            let tt = (toks - t0).min(tile.toks);
                            for r0 in (0..rows).step_by(tile.rows) {
                                let rr = (rows - r0).min(tile.rows);
                                (tile.f)(
                                    &wb[r0 * wrb..(r0 + rr) * wrb],
                                    wrb,
                                    rr,
                                    &ab[t0 * arb..],
                                    arb,
                                    tt,
                                    &mut buf,
                                );
                                for t in 0..tt {
                                    for r in 0..rr {
                                        out[(t0 + t) * rows + r0 + r] = buf[t * rr + r];
                                    }
                                }
                            }
                            t0 += tt;
                        }
                    });
                    line += &format!(
                        ", tiles {}x{} {:6.2}",
                        tile.rows,
                        tile.toks,
                        tiled * 1e9 / (rows * toks) as f64
                    );
                }
                println!("{line}");
            }
        }
        std::hint::black_box(&out);
    }
}
