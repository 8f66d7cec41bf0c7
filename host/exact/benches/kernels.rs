//! Exact kernels on the shapes of the project's models
//! (`cargo bench -p engram-exact --bench kernels`).
//!
//! Matrix-vector products: the AVX2 kernel against the scalar reference in the same run (the
//! two must give the same bits, which is checked here too), per weight format, on random
//! weights with model-like scales. Islands: time per call on one row of the model's width.

use std::hint::black_box;
use std::time::{Duration, Instant};

use engram_exact::{
    attend, attention_scale_q30, quantize_act, rms_norm, rope_adjacent, silu_inplace, softmax,
    Kernel, Q8Block, QuantMatrix, RopeTable, WeightFormat,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn act(&mut self, n: usize) -> Vec<i32> {
        (0..n)
            .map(|_| (self.next() % (8 << 16)) as i32 - (4 << 16))
            .collect()
    }
}

/// Median nanoseconds per call of `f` over 5 rounds of about 100 ms each.
fn time_ns(mut f: impl FnMut()) -> f64 {
    let mut iters = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        if t.elapsed() > Duration::from_millis(100) {
            break;
        }
        iters *= 2;
    }
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    rounds.sort_by(|a, b| a.total_cmp(b));
    rounds[2]
}

/// Median per-call times of `a` and `b` and the median of their per-round ratio, over 11 rounds
/// that alternate between the two (so a load change on a shared machine hits both alike).
fn paired_ns(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64, f64) {
    fn calibrate(f: &mut dyn FnMut()) -> u64 {
        let mut iters = 1u64;
        loop {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            if t.elapsed() > Duration::from_millis(50) {
                return iters;
            }
            iters *= 2;
        }
    }
    fn round(f: &mut dyn FnMut(), iters: u64) -> f64 {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        t.elapsed().as_nanos() as f64 / iters as f64
    }
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(|p, q| p.total_cmp(q));
        v[v.len() / 2]
    }
    let (ia, ib) = (calibrate(&mut a), calibrate(&mut b));
    let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..11 {
        let x = round(&mut a, ia);
        let y = round(&mut b, ib);
        ta.push(x);
        tb.push(y);
        ratio.push(x / y);
    }
    (median(ta), median(tb), median(ratio))
}

fn random_weights(format: WeightFormat, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let bb = format.block_bytes();
    let mut data: Vec<u8> = (0..rows * cols / format.block_len() * bb)
        .map(|_| rng.next() as u8)
        .collect();
    let offsets: &[usize] = match format {
        WeightFormat::Q4_1 | WeightFormat::Q4_K => &[0, 2],
        WeightFormat::Q6_K => &[208],
        _ => &[0],
    };
    for block in data.chunks_exact_mut(bb) {
        for &off in offsets {
            let s = (0x1400 + rng.next() % 0x1000) as u16; // about 2^-10 .. 2^-6
            block[off..off + 2].copy_from_slice(&s.to_le_bytes());
        }
    }
    data
}

/// The float peer: llama.cpp's scheme for `Q4_1 · Q8` on AVX2/FMA (`ggml_vec_dot_q4_1_q8_1`):
/// per block the integer products by `maddubs`, converted to f32 and accumulated with one FMA
/// by `d_w·d_a` (no horizontal sum per block), plus `m_w · (d_a·Σq)`. This is what a float
/// engine's kernel costs on the same data; it is not exact (f32 rounding, order-dependent).
#[cfg(target_arch = "x86_64")]
mod float_peer {
    use std::arch::x86_64::*;

    use engram_exact::Q8Block;

    /// f16 → f32 for every bit pattern (the float path's lookup table).
    pub fn f16_table() -> Vec<f32> {
        (0..=u16::MAX)
            .map(|h| {
                let (m, e) = engram_exact::fixed::f16_parts(h).unwrap_or((0, 0));
                m as f32 * (e as f32).exp2()
            })
            .collect()
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q4_1(
        w: &[u8],
        x: &[Q8Block],
        d_a: &[f32],
        s_a: &[f32],
        table: &[f32],
    ) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0f32;
        for (b, (blk, a)) in w.chunks_exact(20).zip(x).enumerate() {
            let d = table[u16::from_le_bytes([blk[0], blk[1]]) as usize];
            let m = table[u16::from_le_bytes([blk[2], blk[3]]) as usize];
            summs += m * s_a[b];
            let q = unsafe { _mm_loadu_si128(blk[4..20].as_ptr().cast()) };
            let nib = _mm256_and_si256(
                _mm256_set_m128i(_mm_srli_epi16::<4>(q), q),
                _mm256_set1_epi8(0x0f),
            );
            let act = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(nib, act), _mm256_set1_epi16(1));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * d_a[b]), _mm256_cvtepi32_ps(p), acc);
        }
        let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s) + summs
    }
}

fn main() {
    let mut rng = Rng(2026);
    let kernel = Kernel::Auto.name();
    println!("matvec (µs per product), Kernel::Auto = {kernel}");
    println!(
        "{:<28} {:>10} {:>10} {:>9} {:>11}",
        "format rows×cols", "scalar", "auto", "speed-up", "auto GB/s"
    );
    let shapes = [
        (WeightFormat::Q4_1, 1536, 576, "SmolLM2 ffn_up"),
        (WeightFormat::Q4_1, 576, 1536, "SmolLM2 ffn_down"),
        (WeightFormat::Q8_0, 576, 576, "(Q8_0 576²)"),
        (WeightFormat::Q5_0, 4864, 896, "Qwen2.5 ffn_up"),
        (WeightFormat::Q4_K, 896, 4864, "Qwen2.5 ffn_down"),
        (WeightFormat::Q6_K, 896, 4864, "Qwen2.5 ffn_down"),
    ];
    for (format, rows, cols, what) in shapes {
        let data = random_weights(format, rows, cols, &mut rng);
        let m = QuantMatrix::new(format, &data, rows, cols).expect("valid weights");
        let x = rng.act(cols);
        let mut xq = vec![Q8Block::default(); cols / 32];
        quantize_act(&x, &mut xq).expect("aligned");
        let (mut a, mut b) = (vec![0; rows], vec![0; rows]);
        m.matvec(&xq, &mut a, Kernel::Scalar).expect("shapes");
        m.matvec(&xq, &mut b, Kernel::Auto).expect("shapes");
        assert_eq!(a, b, "scalar and {kernel} disagree");
        let (s, v, ratio) = paired_ns(
            || {
                m.matvec(black_box(&xq), black_box(&mut a), Kernel::Scalar)
                    .unwrap()
            },
            || {
                m.matvec(black_box(&xq), black_box(&mut b), Kernel::Auto)
                    .unwrap()
            },
        );
        let label = format!("{format:?} {rows}×{cols}");
        println!(
            "{label:<28} {:>10.1} {:>10.1} {:>8.2}x {:>11.2}   {what}",
            s / 1e3,
            v / 1e3,
            ratio,
            data.len() as f64 / v
        );
        // The engine's layout: scales (and Q4_0/Q4_1 nibbles) packed for eight-row tiles.
        let packed = m.clone().with_packed_scales();
        let mut c = vec![0; rows];
        packed.matvec(&xq, &mut c, Kernel::Auto).expect("shapes");
        assert_eq!(a, c, "scalar and the tiles disagree");
        if format.block_len() == 32 {
            let (_, t, tiles_ratio) = paired_ns(
                || {
                    m.matvec(black_box(&xq), black_box(&mut b), Kernel::Auto)
                        .unwrap()
                },
                || {
                    packed
                        .matvec(black_box(&xq), black_box(&mut c), Kernel::Auto)
                        .unwrap()
                },
            );
            println!(
                "{:<28} {:>10} {:>10.1} {:>8.2}x {:>11}   eight-row tiles vs per-row {kernel}",
                format!("  tiles {rows}×{cols}"),
                "",
                t / 1e3,
                tiles_ratio,
                ""
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        println!("\nQ4_1 matvec, exact (Kernel::Auto) vs the float peer (llama.cpp's f32 scheme), same data");
        println!(
            "{:<28} {:>10} {:>10} {:>12}",
            "rows×cols", "exact", "float", "exact/float"
        );
        let table = float_peer::f16_table();
        for (rows, cols) in [(1536, 576), (576, 1536)] {
            let data = random_weights(WeightFormat::Q4_1, rows, cols, &mut rng);
            let m = QuantMatrix::new(WeightFormat::Q4_1, &data, rows, cols).expect("valid weights");
            let x = rng.act(cols);
            let mut xq = vec![Q8Block::default(); cols / 32];
            quantize_act(&x, &mut xq).expect("aligned");
            let d_a: Vec<f32> = xq.iter().map(|b| (b.shift as f32 - 16.0).exp2()).collect();
            let s_a: Vec<f32> = xq.iter().zip(&d_a).map(|(b, d)| b.sum as f32 * d).collect();
            let rb = cols / 32 * 20;
            let mut out_f = vec![0f32; rows];
            let mut out_x = vec![0i32; rows];
            let float = |out: &mut [f32]| {
                for (r, o) in out.iter_mut().enumerate() {
                    // SAFETY: AVX2 and FMA were detected above.
                    *o = unsafe {
                        float_peer::dot_q4_1(&data[r * rb..(r + 1) * rb], &xq, &d_a, &s_a, &table)
                    };
                }
            };
            float(&mut out_f);
            m.matvec(&xq, &mut out_x, Kernel::Auto).unwrap();
            for (f, e) in out_f.iter().zip(&out_x) {
                assert!(
                    (f - *e as f32 / 65536.0).abs() <= 1e-3 * (1.0 + f.abs()),
                    "peer disagrees: {f} vs {e}"
                );
            }
            let (ex, fl, ratio) = paired_ns(
                || {
                    m.matvec(black_box(&xq), black_box(&mut out_x), Kernel::Auto)
                        .unwrap()
                },
                || float(black_box(&mut out_f)),
            );
            println!(
                "{:<28} {:>10.1} {:>10.1} {:>11.2}x",
                format!("{rows}×{cols}"),
                ex / 1e3,
                fl / 1e3,
                ratio
            );
        }
    }

    println!("\nislands (µs per call)");
    let d = 576;
    let x = rng.act(d);
    let w = rng.act(d);
    let mut out = vec![0; d];
    let t = time_ns(|| rms_norm(black_box(&x), &w, 42950, &mut out).unwrap());
    println!("{:<40} {:>8.2}", "rms_norm, 576", t / 1e3);
    let mut xq = vec![Q8Block::default(); d / 32];
    let t = time_ns(|| quantize_act(black_box(&x), &mut xq).unwrap());
    println!("{:<40} {:>8.2}", "quantize_act, 576", t / 1e3);
    let mut g = rng.act(1536);
    let t = time_ns(|| silu_inplace(black_box(&mut g)));
    println!("{:<40} {:>8.2}", "silu, 1536", t / 1e3);
    let scores = rng.act(256);
    let mut p = vec![0u32; 256];
    let t = time_ns(|| softmax(black_box(&scores), &mut p).unwrap());
    println!("{:<40} {:>8.2}", "softmax, 256", t / 1e3);
    let table = RopeTable::new(100_000, 64).expect("valid rope");
    let (mut c, mut s) = (vec![0; 32], vec![0; 32]);
    let t = time_ns(|| table.cos_sin(black_box(1234), &mut c, &mut s).unwrap());
    println!("{:<40} {:>8.2}", "rope cos_sin (CORDIC), d 64", t / 1e3);
    let mut head = rng.act(64);
    let t = time_ns(|| rope_adjacent(black_box(&mut head), &c, &s).unwrap());
    println!("{:<40} {:>8.2}", "rope_adjacent, d 64", t / 1e3);
    let (q, k, v) = (rng.act(64), rng.act(256 * 192), rng.act(256 * 192));
    let (mut sc, mut pr, mut o) = (vec![0; 256], vec![0; 256], vec![0; 64]);
    let t = time_ns(|| {
        attend(
            black_box(&q),
            &k,
            &v,
            192,
            attention_scale_q30(64),
            &mut sc,
            &mut pr,
            &mut o,
        )
        .unwrap()
    });
    println!("{:<40} {:>8.2}", "attend, d 64, 256 positions", t / 1e3);
}
